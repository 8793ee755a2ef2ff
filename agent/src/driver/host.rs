//! The `host` driver: the datacenter is the machine the agent runs on, as
//! the operating system reports it.
//!
//! - `compute.vcpu`: logical CPUs. The host does not lend CPUs out, so all
//!   of them are reported free.
//! - `compute.memory`: total and available RAM in bytes.
//! - `storage.block`: total and available bytes of the filesystem that
//!   holds `state_dir`. One filesystem, not the sum of all disks: mounts of
//!   the same device, bind mounts and pseudo filesystems would otherwise be
//!   counted again and again, and the operator picks the volume that is
//!   offered by placing `state_dir` on it.
//! - `network.bandwidth`: the sum of the link speeds (bit/s) of the
//!   interfaces that are up, not loopback and backed by a device (see
//!   [`link_speed_bits`]); left out when no speed is known, as in most VMs.
//!
//! Assignments are bookkeeping: the driver records them in the state file
//! but does not carve the host up. What is free is what the host reports,
//! so the manager sees any use of the machine, by theia's tenants or not.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
use theia::model::ResourceClass;

use super::{Assignment, ClassInventory, Driver, DriverError, Outcome, StateFile, class_list};

/// Where Linux lists network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// `IFF_LOOPBACK` from `<linux/if.h>`.
const IFF_LOOPBACK: u64 = 0x8;

/// The machine the agent runs on.
#[derive(Debug)]
pub struct HostDriver {
    system: System,
    /// Canonical, so it can be matched against mount points.
    state_dir: PathBuf,
    net_root: PathBuf,
    /// The classes of the latest inventory, which `apply` accepts.
    classes: BTreeSet<ResourceClass>,
    state: StateFile,
}

impl HostDriver {
    /// A driver for this machine with its state in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, DriverError> {
        let state = StateFile::open(state_dir)?;
        let state_dir = fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_owned());
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let mut driver = Self {
            system,
            state_dir,
            net_root: PathBuf::from(SYS_CLASS_NET),
            classes: BTreeSet::new(),
            state,
        };
        driver.inventory();
        Ok(driver)
    }
}

/// Total and available bytes of the filesystem holding `path`: the mounted
/// disk with the longest mount point that contains it.
fn filesystem_of(path: &Path) -> Option<(u64, u64)> {
    let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage());
    disks
        .list()
        .iter()
        .filter(|d| d.total_space() > 0 && path.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().components().count())
        .map(|d| (d.total_space(), d.available_space().min(d.total_space())))
}

/// The sum of link speeds in bit/s of the interfaces under `root` (normally
/// `/sys/class/net`) whose operational state is `up`, that are not loopback
/// and that have a `device` (a NIC, physical or virtio). Bridges, VLANs,
/// bonds, veths and tunnels have none: they carry traffic of those devices,
/// and counting them would count the same bandwidth twice. Speeds of `-1`
/// (unknown) or unreadable are skipped; `None` when no speed is known.
pub fn link_speed_bits(root: &Path) -> Option<u64> {
    let read = |dir: &Path, file: &str| fs::read_to_string(dir.join(file)).ok();
    let mut total: Option<u64> = None;
    for entry in fs::read_dir(root).ok()?.flatten() {
        let dir = entry.path();
        let loopback = read(&dir, "flags")
            .and_then(|f| u64::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & IFF_LOOPBACK != 0);
        let up = read(&dir, "operstate").is_some_and(|s| s.trim() == "up");
        if loopback || !up || !dir.join("device").exists() {
            continue;
        }
        let Some(mbit) = read(&dir, "speed").and_then(|s| s.trim().parse::<i64>().ok()) else {
            continue;
        };
        if let Ok(mbit) = u64::try_from(mbit)
            && mbit > 0
        {
            let bits = mbit.saturating_mul(1_000_000);
            total = Some(total.unwrap_or(0).saturating_add(bits));
        }
    }
    total
}

impl Driver for HostDriver {
    fn name(&self) -> &'static str {
        "host"
    }

    fn inventory(&mut self) -> Vec<ClassInventory> {
        self.system
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let vcpu = u64::try_from(self.system.cpus().len()).unwrap_or(u64::MAX);
        let memory = self.system.total_memory();
        let mut found: Vec<(&str, u64, u64)> = vec![
            ("compute.vcpu", vcpu, vcpu),
            (
                "compute.memory",
                memory,
                self.system.available_memory().min(memory),
            ),
        ];
        if let Some((total, free)) = filesystem_of(&self.state_dir) {
            found.push(("storage.block", total, free));
        }
        if let Some(bits) = link_speed_bits(&self.net_root) {
            found.push(("network.bandwidth", bits, bits));
        }
        // What the assignments hold, read with the measurement above. The
        // host's free shows only what tenants use of it, so external usage
        // (used − held) may read low here, as it did from applied flags.
        let held = self.state.used(None);
        let inventory: Vec<ClassInventory> = found
            .into_iter()
            .filter(|(_, total, _)| *total > 0)
            .filter_map(|(name, total, free)| {
                let class = ResourceClass::parse(name).ok()?;
                let held = held.get(&class);
                Some(ClassInventory {
                    class,
                    total,
                    free,
                    held,
                })
            })
            .collect();
        self.classes = inventory.iter().map(|i| i.class.clone()).collect();
        inventory
    }

    fn apply(&mut self, assignment: &Assignment) -> Result<Outcome, DriverError> {
        // No capacity check: the host's own free numbers are the truth, and
        // the manager placed against them. A class the host lacks, though,
        // cannot be given.
        for (class, amount) in assignment.resources.iter() {
            if amount > 0 && !self.classes.contains(class) {
                return Err(DriverError::UnknownClass {
                    class: class.clone(),
                    known: class_list(self.classes.iter()),
                });
            }
        }
        self.state.insert(assignment)
    }

    fn release(&mut self, claim_id: &str) -> Result<Outcome, DriverError> {
        self.state.remove(claim_id)
    }

    fn held(&self) -> BTreeSet<String> {
        self.state.held()
    }
}

#[cfg(test)]
mod tests {
    use theia::model::Resources;

    use super::*;

    fn amount(inv: &[ClassInventory], class: &str) -> Option<(u64, u64)> {
        inv.iter()
            .find(|i| i.class.as_str() == class)
            .map(|i| (i.total, i.free))
    }

    #[test]
    fn fingerprints_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = HostDriver::open(dir.path()).unwrap();
        assert_eq!(d.name(), "host");
        let inv = d.inventory();
        let (vcpu, vcpu_free) = amount(&inv, "compute.vcpu").expect("vcpus reported");
        assert!(vcpu >= 1);
        assert_eq!(vcpu, vcpu_free);
        let (mem, mem_free) = amount(&inv, "compute.memory").expect("memory reported");
        assert!(mem >= 64 << 20, "{mem} bytes of RAM");
        assert!(mem_free <= mem);
        if let Some((disk, disk_free)) = amount(&inv, "storage.block") {
            assert!(disk > 0 && disk_free <= disk);
        }
    }

    #[test]
    fn records_assignments_without_carving_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = HostDriver::open(dir.path()).unwrap();
        let a = Assignment {
            claim_id: "c1".into(),
            tenant: "acme".into(),
            resources: Resources::parse_list("r", "compute.vcpu=1").unwrap(),
        };
        assert_eq!(d.apply(&a).unwrap(), Outcome::Changed);
        assert_eq!(d.apply(&a).unwrap(), Outcome::Unchanged);
        let (vcpu, free) = amount(&d.inventory(), "compute.vcpu").unwrap();
        assert_eq!(
            vcpu, free,
            "bookkeeping does not change what the host reports"
        );
        let gpu = Assignment {
            claim_id: "c2".into(),
            tenant: "acme".into(),
            resources: Resources::parse_list("r", "compute.gpu=1").unwrap(),
        };
        let e = d.apply(&gpu).unwrap_err();
        assert!(e.to_string().starts_with("compute.gpu is not in"), "{e}");
        drop(d);
        let mut d = HostDriver::open(dir.path()).unwrap();
        assert_eq!(d.held(), BTreeSet::from(["c1".to_owned()]));
        assert_eq!(d.release("c1").unwrap(), Outcome::Changed);
        assert_eq!(d.release("c1").unwrap(), Outcome::Unchanged);
    }

    fn interface(
        root: &Path,
        name: &str,
        flags: &str,
        state: &str,
        speed: Option<&str>,
        nic: bool,
    ) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("flags"), format!("{flags}\n")).unwrap();
        fs::write(dir.join("operstate"), format!("{state}\n")).unwrap();
        if let Some(speed) = speed {
            fs::write(dir.join("speed"), format!("{speed}\n")).unwrap();
        }
        if nic {
            fs::create_dir(dir.join("device")).unwrap();
        }
    }

    #[test]
    fn sums_the_speeds_of_links_that_are_up() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        interface(r, "eth0", "0x1003", "up", Some("10000"), true);
        interface(r, "eth1", "0x1003", "up", Some("1000"), true);
        interface(r, "lo", "0x9", "up", Some("100000"), true);
        interface(r, "veth0", "0x1003", "up", Some("10000"), false);
        interface(r, "eth2", "0x1002", "down", Some("1000"), true);
        interface(r, "eth3", "0x1003", "up", Some("-1"), true);
        interface(r, "eth4", "0x1003", "up", None, true);
        interface(r, "eth5", "0x1003", "up", Some("garbage"), true);
        assert_eq!(link_speed_bits(r), Some(11_000_000_000));
    }

    #[test]
    fn no_known_speed_leaves_the_class_out() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(link_speed_bits(root.path()), None);
        interface(root.path(), "eth0", "0x1003", "up", Some("-1"), true);
        assert_eq!(link_speed_bits(root.path()), None);
        assert_eq!(link_speed_bits(&root.path().join("missing")), None);
    }
}
