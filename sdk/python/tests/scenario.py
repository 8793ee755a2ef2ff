"""The SDK against a real manager: python scenario.py HOST:PORT TOKEN.

Who am I, tenant, profile, claim, list, explain, release, a refused claim
with its code, a missing tenant, a call without a token; prints
SCENARIO-OK at the end.
"""

import sys

import theia_client
from theia_client.errors import NotFound, ResourceExhausted, Unauthenticated
from theia_client.v1 import access_pb2, claim_pb2, profile_pb2, tenant_pb2


def main(manager: str, token: str) -> None:
    with theia_client.connect(manager, timeout=10) as stranger:
        try:
            stranger.tenants.ListTenants(tenant_pb2.ListTenantsRequest())
            raise AssertionError("a call without a token was answered")
        except Unauthenticated as error:
            assert error.code == "UNAUTHENTICATED", error.code
    with theia_client.connect(manager, token=token, timeout=10) as theia:
        me = theia.access.WhoAmI(access_pb2.WhoAmIRequest())
        assert "admin" in me.token.roles, me
        tenant = theia.tenants.CreateTenant(
            tenant_pb2.CreateTenantRequest(
                tenant=tenant_pb2.Tenant(name="pyco", quota={"compute.vcpu": "8"})
            )
        )
        assert tenant.name == "pyco", tenant
        theia.profiles.CreateProfile(
            profile_pb2.CreateProfileRequest(
                profile=profile_pb2.Profile(name="py.small", resources={"compute.vcpu": "4"})
            )
        )

        spec = claim_pb2.ClaimSpec(tenant="pyco", profile="py.small", count=1, request_id="py-1")
        explained = theia.claims.ExplainClaim(claim_pb2.ExplainClaimRequest(spec=spec))
        assert explained.fits and explained.placements, explained
        claim = theia.claims.CreateClaim(claim_pb2.CreateClaimRequest(spec=spec))
        assert claim.id.startswith("c-") and claim.placements, claim
        again = theia.claims.CreateClaim(claim_pb2.CreateClaimRequest(spec=spec))
        assert again.id == claim.id, "a retry with the same request id returns the same claim"

        listed = theia.claims.ListClaims(claim_pb2.ListClaimsRequest(tenant="pyco"))
        assert [c.id for c in listed.claims] == [claim.id], listed

        try:
            theia.claims.CreateClaim(
                claim_pb2.CreateClaimRequest(
                    spec=claim_pb2.ClaimSpec(tenant="pyco", profile="py.small", count=2)
                )
            )
            raise AssertionError("a claim over quota was accepted")
        except ResourceExhausted as error:
            assert error.code == "RESOURCE_EXHAUSTED", error.code
            assert "quota" in error.message, error.message

        try:
            theia.tenants.GetTenant(tenant_pb2.GetTenantRequest(name="nobody"))
            raise AssertionError("a missing tenant was found")
        except NotFound as error:
            assert isinstance(error, theia_client.TheiaError)
            assert "nobody" in error.message, error.message

        released = theia.claims.ReleaseClaim(claim_pb2.ReleaseClaimRequest(id=claim.id))
        assert released.state == claim_pb2.CLAIM_STATE_RELEASED, released
        live = theia.claims.ListClaims(claim_pb2.ListClaimsRequest(tenant="pyco"))
        assert not live.claims, live
    print("SCENARIO-OK")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
