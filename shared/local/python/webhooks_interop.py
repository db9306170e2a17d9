"""Standard Webhooks interop: checks Switchyard's signatures with the public
`standardwebhooks` and `svix` libraries, and signs with them for Switchyard
to verify.

Reads one JSON object from stdin and writes one JSON object to stdout.

  verify: {"secret", "headers": {name: value}, "body"}
          -> {"standardwebhooks": "ok" | <error>, "svix": "ok" | <error>}
  sign:   {"secret", "msg_id", "timestamp": <unix seconds>, "body"}
          -> {"standardwebhooks": "v1,...", "svix": "v1,..."}
"""

import json
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook


def verify(req: dict) -> dict:
    out = {}
    for name, cls in (("standardwebhooks", StandardWebhook), ("svix", SvixWebhook)):
        try:
            cls(req["secret"]).verify(req["body"].encode(), dict(req["headers"]))
            out[name] = "ok"
        except Exception as e:  # report, don't crash: the caller asserts
            out[name] = f"{type(e).__name__}: {e}"
    return out


def sign(req: dict) -> dict:
    ts = datetime.fromtimestamp(int(req["timestamp"]), tz=timezone.utc)
    return {
        name: cls(req["secret"]).sign(req["msg_id"], ts, req["body"])
        for name, cls in (("standardwebhooks", StandardWebhook), ("svix", SvixWebhook))
    }


def main() -> None:
    command = sys.argv[1]
    req = json.load(sys.stdin)
    result = {"verify": verify, "sign": sign}[command](req)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
