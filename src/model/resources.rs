//! Resource classes and bundles of quantities per class.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::quoted;

use super::{FieldError, format_quantity, format_quantity_short, parse_quantity};

/// The classes theia knows, with their unit; operators add `custom.*` ones.
pub const WELL_KNOWN_CLASSES: &[(&str, UnitKind)] = &[
    ("compute.vcpu", UnitKind::Count),
    ("compute.memory", UnitKind::Bytes),
    ("compute.gpu", UnitKind::Count),
    ("storage.block", UnitKind::Bytes),
    ("storage.object", UnitKind::Bytes),
    ("network.bandwidth", UnitKind::BitsPerSecond),
    ("network.ipv4", UnitKind::Count),
];

/// The three dimensions of a datacenter, and the operators' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `compute.*`
    Compute,
    /// `storage.*`
    Storage,
    /// `network.*`
    Network,
    /// `custom.*`
    Custom,
}

/// What a class's base unit counts, which decides how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// Things: vCPUs, GPUs, addresses.
    Count,
    /// Bytes; printed with binary suffixes (`256Gi`).
    Bytes,
    /// Bits per second; printed with decimal suffixes (`10G`).
    BitsPerSecond,
}

/// The well-known class names in name order: a well-known class is kept
/// as its place here, so that comparing two (every map lookup by class)
/// reads no string.
const KNOWN_IN_ORDER: [&str; 7] = [
    "compute.gpu",
    "compute.memory",
    "compute.vcpu",
    "network.bandwidth",
    "network.ipv4",
    "storage.block",
    "storage.object",
];

/// A validated resource class name such as `compute.vcpu` or `custom.fpga`.
/// Ordered, compared and hashed by name.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceClass(Name);

/// How a class name is kept.
#[derive(Clone, PartialEq, Eq)]
enum Name {
    /// A place in [`KNOWN_IN_ORDER`].
    Known(u8),
    /// `custom.<name>`.
    Custom(Box<str>),
}

impl PartialEq for ResourceClass {
    fn eq(&self, other: &Self) -> bool {
        // A custom name is never a well-known one: equal names, equal keeping.
        self.0 == other.0
    }
}

impl Eq for ResourceClass {}

impl Ord for ResourceClass {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Name::Known(a), Name::Known(b)) => a.cmp(b),
            _ => self.as_str().cmp(other.as_str()),
        }
    }
}

impl PartialOrd for ResourceClass {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for ResourceClass {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ResourceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResourceClass")
            .field(&self.as_str())
            .finish()
    }
}

impl ResourceClass {
    /// Parses a class name: one of the well-known classes or `custom.<name>`.
    pub fn parse(name: &str) -> Result<Self, String> {
        if let Some(i) = KNOWN_IN_ORDER.iter().position(|n| *n == name) {
            return Ok(Self(Name::Known(i as u8)));
        }
        if let Some(rest) = name.strip_prefix("custom.") {
            let ok = !rest.is_empty()
                && rest.len() <= 56
                && rest.starts_with(|c: char| c.is_ascii_lowercase())
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if ok {
                return Ok(Self(Name::Custom(name.into())));
            }
            return Err(format!(
                "{} is not a valid custom class; use custom.<name> with lower-case letters, digits, '-' and '_'",
                quoted(name)
            ));
        }
        let known: Vec<&str> = WELL_KNOWN_CLASSES.iter().map(|(n, _)| *n).collect();
        Err(format!(
            "unknown resource class {}; known classes are {} and custom.<name>",
            quoted(name),
            known.join(", ")
        ))
    }

    /// The class name.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Name::Known(i) => KNOWN_IN_ORDER[usize::from(*i)],
            Name::Custom(name) => name,
        }
    }

    /// Which dimension the class belongs to.
    pub fn family(&self) -> Family {
        match self.as_str().split('.').next() {
            Some("compute") => Family::Compute,
            Some("storage") => Family::Storage,
            Some("network") => Family::Network,
            _ => Family::Custom,
        }
    }

    /// The unit of the class.
    pub fn unit(&self) -> UnitKind {
        WELL_KNOWN_CLASSES
            .iter()
            .find(|(n, _)| *n == self.as_str())
            .map_or(UnitKind::Count, |(_, u)| *u)
    }

    /// Prints an amount of this class in human units, exactly.
    pub fn format(&self, amount: u64) -> String {
        format_quantity(amount, self.unit())
    }

    /// Prints an amount of this class briefly, for tables (`23.5Gi`).
    pub fn format_short(&self, amount: u64) -> String {
        format_quantity_short(amount, self.unit())
    }
}

impl TryFrom<String> for ResourceClass {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ResourceClass> for String {
    fn from(c: ResourceClass) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for ResourceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Amounts per resource class, in base units. Absent classes are zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resources(BTreeMap<ResourceClass, u64>);

impl Resources {
    /// No resources.
    pub const fn new() -> Self {
        Self(BTreeMap::new())
    }

    /// Parses `class -> quantity` pairs, naming the offending entry as
    /// `field[class]` on error. Explicit zeros are kept (a quota of zero
    /// forbids a class; an absent class is not limited).
    pub fn parse_map<'a>(
        field: &str,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FieldError> {
        let mut out = Self::new();
        for (class, quantity) in entries {
            let at = || format!("{field}[{class}]");
            let class = ResourceClass::parse(class.trim()).map_err(|e| FieldError::new(at(), e))?;
            let amount =
                parse_quantity(quantity).map_err(|e| FieldError::new(at(), e.to_string()))?;
            if out.0.contains_key(&class) {
                return Err(FieldError::new(at(), "is given twice"));
            }
            out.set(class, amount);
        }
        Ok(out)
    }

    /// Parses `compute.vcpu=64,compute.memory=256Gi` as typed on a command line.
    pub fn parse_list(field: &str, list: &str) -> Result<Self, FieldError> {
        let mut pairs = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                FieldError::new(
                    field,
                    format!(
                        "{} is not class=quantity, e.g. compute.vcpu=64",
                        quoted(item)
                    ),
                )
            })?;
            pairs.push((k, v));
        }
        Self::parse_map(field, pairs)
    }

    /// The amount of `class`.
    pub fn get(&self, class: &ResourceClass) -> u64 {
        self.0.get(class).copied().unwrap_or(0)
    }

    /// The amount of `class` if it is given at all, as quotas need it.
    pub fn limit(&self, class: &ResourceClass) -> Option<u64> {
        self.0.get(class).copied()
    }

    /// Sets the amount of `class`.
    pub fn set(&mut self, class: ResourceClass, amount: u64) {
        self.0.insert(class, amount);
    }

    /// Classes that are given, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceClass, u64)> {
        self.0.iter().map(|(c, a)| (c, *a))
    }

    /// Whether every amount is zero.
    pub fn is_zero(&self) -> bool {
        self.0.values().all(|a| *a == 0)
    }

    /// Adds `other` in place, saturating at `u64::MAX`.
    pub fn add(&mut self, other: &Resources) {
        for (class, amount) in other.iter() {
            let sum = self.get(class).saturating_add(amount);
            self.set(class.clone(), sum);
        }
    }

    /// Takes `other` away in place, stopping at zero; classes that come to
    /// zero are dropped, so that adding and then taking away the same amounts
    /// leaves what was there before.
    pub fn subtract(&mut self, other: &Resources) {
        for (class, amount) in other.iter() {
            let left = self.get(class).saturating_sub(amount);
            if left == 0 {
                self.0.remove(class);
            } else {
                self.set(class.clone(), left);
            }
        }
    }

    /// `self × n`, saturating.
    #[must_use]
    pub fn times(&self, n: u64) -> Resources {
        Resources(
            self.0
                .iter()
                .map(|(c, a)| (c.clone(), a.saturating_mul(n)))
                .collect(),
        )
    }

    /// Human-unit strings per class, as the wire API carries them.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(c, a)| (c.to_string(), c.format(a)))
            .collect()
    }

    /// Base units per class, as agents receive them.
    pub fn to_base_units(&self) -> BTreeMap<String, u64> {
        self.iter().map(|(c, a)| (c.to_string(), a)).collect()
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .iter()
            .map(|(c, a)| format!("{c}={}", c.format(a)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> ResourceClass {
        ResourceClass::parse(s).unwrap()
    }

    /// Classes order, compare and hash as their names do, however kept.
    #[test]
    fn classes_order_and_compare_by_name() {
        let mut known: Vec<&str> = WELL_KNOWN_CLASSES.iter().map(|(n, _)| *n).collect();
        known.sort_unstable();
        assert_eq!(known, KNOWN_IN_ORDER, "the same classes, in name order");
        let names = [
            "compute.gpu",
            "compute.memory",
            "compute.vcpu",
            "custom.a",
            "custom.zz",
            "network.bandwidth",
            "network.ipv4",
            "storage.block",
            "storage.object",
        ];
        let hash = |c: &ResourceClass| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.hash(&mut h);
            h.finish()
        };
        for a in names {
            for b in names {
                let (x, y) = (class(a), class(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a} vs {b}");
                assert_eq!(x == y, a == b, "{a} vs {b}");
                assert_eq!(hash(&x) == hash(&y), a == b, "{a} vs {b}");
            }
            assert_eq!(class(a).as_str(), a);
            assert_eq!(String::from(class(a)), a);
            assert_eq!(format!("{:?}", class(a)), format!("ResourceClass({a:?})"));
        }
    }

    #[test]
    fn knows_the_well_known_and_custom_classes() {
        assert_eq!(class("compute.vcpu").family(), Family::Compute);
        assert_eq!(class("storage.block").unit(), UnitKind::Bytes);
        assert_eq!(class("network.bandwidth").unit(), UnitKind::BitsPerSecond);
        assert_eq!(class("custom.fpga").family(), Family::Custom);
        for bad in ["compute.cpus", "memory", "custom.", "custom.Bad", ""] {
            assert!(ResourceClass::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            ResourceClass::parse("compute.cpus")
                .unwrap_err()
                .contains("compute.vcpu")
        );
    }

    #[test]
    fn parses_a_command_line_list_and_prints_it_back() {
        let r = Resources::parse_list(
            "resources",
            "compute.vcpu=64, compute.memory=256Gi,network.bandwidth=10G",
        )
        .unwrap();
        assert_eq!(r.get(&class("compute.memory")), 256 << 30);
        assert_eq!(
            r.to_string(),
            "compute.memory=256Gi,compute.vcpu=64,network.bandwidth=10G"
        );
    }

    #[test]
    fn names_the_bad_entry() {
        let e =
            Resources::parse_list("resources", "compute.vcpu=64,compute.memory=lots").unwrap_err();
        assert_eq!(e.field, "resources[compute.memory]");
        let e = Resources::parse_list("quota", "compute.cpu=1").unwrap_err();
        assert_eq!(e.field, "quota[compute.cpu]");
        assert!(e.reason.contains("unknown resource class"));
        let e = Resources::parse_list("quota", "compute.vcpu").unwrap_err();
        assert!(e.reason.contains("class=quantity"));
    }
}
