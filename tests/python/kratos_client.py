"""Drives a running Portcullis identity server with Ory's generated Python SDK.

Starts nothing itself. Usage:

    pip install ory-kratos-client
    python3 tests/python/kratos_client.py PUBLIC_URL ADMIN_URL

It completes native registration, login, whoami and logout on the public API, and
identity CRUD (create, get, list, update, delete) on the admin API; it exits non-zero on
the first failure.
"""

import sys
import uuid

import ory_kratos_client as k
from ory_kratos_client.api.frontend_api import FrontendApi
from ory_kratos_client.api.identity_api import IdentityApi
from ory_kratos_client.exceptions import ApiException


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    public_url, admin_url = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    frontend = FrontendApi(k.ApiClient(k.Configuration(host=public_url)))
    identities = IdentityApi(k.ApiClient(k.Configuration(host=admin_url)))
    email = f"py-{uuid.uuid4().hex[:8]}@example.com"
    password = "a python passphrase 7"

    flow = frontend.create_native_registration_flow()
    registered = frontend.update_registration_flow(
        flow=flow.id,
        update_registration_flow_body=k.UpdateRegistrationFlowBody(
            k.UpdateRegistrationFlowWithPasswordMethod(
                method="password", password=password, traits={"email": email}
            )
        ),
    )
    print(f"registration: identity {registered.identity.id} traits {registered.identity.traits}")

    flow = frontend.create_native_login_flow()
    login = frontend.update_login_flow(
        flow=flow.id,
        update_login_flow_body=k.UpdateLoginFlowBody(
            k.UpdateLoginFlowWithPasswordMethod(
                method="password", identifier=email, password=password
            )
        ),
    )
    token = login.session_token
    print(f"login: session {login.session.id} token {token[:7]}...")

    session = frontend.to_session(x_session_token=token)
    print(f"whoami: active={session.active} identity={session.identity.id}")

    frontend.perform_native_logout(
        perform_native_logout_body=k.PerformNativeLogoutBody(session_token=token)
    )
    try:
        frontend.to_session(x_session_token=token)
        print("logout: FAILED, the session is still valid")
        return 1
    except ApiException as e:
        print(f"logout: whoami now answers {e.status}")

    created = identities.create_identity(
        create_identity_body=k.CreateIdentityBody(
            schema_id="default", traits={"email": f"admin-{email}"}
        )
    )
    print(f"admin create: {created.id} state={created.state}")
    fetched = identities.get_identity(id=created.id)
    print(f"admin get: {fetched.traits}")
    listed = identities.list_identities(page_size=250)
    print(f"admin list: {len(listed)} identities, ours listed: {any(i.id == created.id for i in listed)}")
    updated = identities.update_identity(
        id=created.id,
        update_identity_body=k.UpdateIdentityBody(
            schema_id="default", state="inactive", traits={"email": f"admin2-{email}"}
        ),
    )
    print(f"admin update: state={updated.state} traits={updated.traits}")
    identities.delete_identity(id=created.id)
    try:
        identities.get_identity(id=created.id)
        print("admin delete: FAILED, still there")
        return 1
    except ApiException as e:
        print(f"admin delete: get now answers {e.status}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
