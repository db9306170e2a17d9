"""One tenant's lifecycle, driven only through a Python client generated
from functions/api/openapi.json with openapi-python-client.

Usage: lifecycle.py (with the generated package `switchyard_client` on
PYTHONPATH, and API, ADMIN_KEY and RECEIVER in the environment). Exits 0
when every step answered as the document says; prints what it did.
"""

import os
import sys
import time

from switchyard_client import AuthenticatedClient
from switchyard_client.api.admin import create_a_tenant, create_a_tenant_api_key, delete_a_tenant
from switchyard_client.api.tenant import (
    delete_an_endpoint,
    get_an_endpoint,
    list_an_events_deliveries,
    resend_a_delivery_now,
    rotate_an_endpoints_secret,
    send_an_event,
)
from switchyard_client.api.tenant import create_an_endpoint
from switchyard_client.models import (
    EndpointInput,
    EventInput,
    EventInputData,
    NewKey,
    NewTenant,
    Rotate,
)


def expect(what, response, status):
    if response.status_code != status:
        sys.exit(f"{what}: expected {status}, got {response.status_code}: {response.content!r}")
    print(f"{what}: {status}")
    return response.parsed


def main():
    api, receiver = os.environ["API"], os.environ["RECEIVER"]
    admin = AuthenticatedClient(base_url=api, token=os.environ["ADMIN_KEY"], raise_on_unexpected_status=True)
    tenant = "client_lifecycle"

    expect("create a tenant", create_a_tenant.sync_detailed(client=admin, body=NewTenant(id=tenant, name="Client Lifecycle")), 201)
    key = expect(
        "create an API key",
        create_a_tenant_api_key.sync_detailed(tenant, client=admin, body=NewKey(label="lifecycle")),
        201,
    )
    client = AuthenticatedClient(base_url=api, token=key.api_key, raise_on_unexpected_status=True)

    endpoint = expect(
        "create an endpoint",
        create_an_endpoint.sync_detailed(client=client, body=EndpointInput(url=receiver, filter_types=["order.*"])),
        201,
    )
    assert endpoint.secret.startswith("whsec_"), endpoint.secret
    assert expect("get the endpoint", get_an_endpoint.sync_detailed(endpoint.id, client=client), 200).id == endpoint.id

    data = EventInputData.from_dict({"n": 1})
    sent = expect(
        "send an event",
        send_an_event.sync_detailed(client=client, body=EventInput(type_="order.placed", data=data, id="ord_1"), idempotency_key="ord-1"),
        202,
    )
    assert sent.id == "ord_1", sent.id

    delivery = None
    for _ in range(100):
        page = expect("list the event's deliveries", list_an_events_deliveries.sync_detailed("ord_1", client=client), 200)
        if page.items and page.items[0].state == "succeeded":
            delivery = page.items[0]
            break
        time.sleep(0.3)
    if delivery is None:
        sys.exit("the event was not delivered within 30 s")
    print(f"delivered: {delivery.id}")

    expect("resend the delivery", resend_a_delivery_now.sync_detailed(delivery.id, client=client), 202)
    rotated = expect(
        "rotate the secret",
        rotate_an_endpoints_secret.sync_detailed(endpoint.id, client=client, body=Rotate(overlap_hours=0)),
        200,
    )
    print(f"rotated: {sorted(rotated.to_dict())}")
    expect("delete the endpoint", delete_an_endpoint.sync_detailed(endpoint.id, client=client), 204)
    expect("the endpoint is gone", get_an_endpoint.sync_detailed(endpoint.id, client=client), 404)
    expect("delete the tenant", delete_a_tenant.sync_detailed(tenant, client=admin), 204)
    print("lifecycle: ok")


if __name__ == "__main__":
    main()
