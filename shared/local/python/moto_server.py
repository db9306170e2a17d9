"""moto's server for Switchyard's local stack and tests.

Listens on 127.0.0.1 (port from argv, 0 = any free port), prints
`READY <port>` once it accepts connections, and exits as soon as its
standard input closes: the process that started it holds the other end, so
moto never outlives it, even when that process is killed.
"""

import os
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

# moto applies a TransactWriteItems by copying the tables it touches and
# putting the copies back if a condition fails, and checks conditions apart
# from the writes. With requests served on several threads, two
# transactions can then both pass a condition that only one may pass, and a
# failed one can undo another's writes. DynamoDB isolates them; here every
# table operation runs under one lock, which gives the same.
_TABLE_LOCK = threading.RLock()


def _serialized(method):
    def run(*args, **kwargs):
        with _TABLE_LOCK:
            return method(*args, **kwargs)

    return run


for _name in (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
):
    setattr(DynamoDBBackend, _name, _serialized(getattr(DynamoDBBackend, _name)))


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    _, bound = server.get_host_and_port()
    print(f"READY {bound}", flush=True)
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
