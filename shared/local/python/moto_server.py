"""moto's server for Switchyard's local stack and tests.

Listens on 127.0.0.1 (port from argv, 0 = any free port), prints
`READY <port>` once it accepts connections, and exits as soon as its
standard input closes: the process that started it holds the other end, so
moto never outlives it, even when that process is killed.
"""

import os
import sys

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


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
