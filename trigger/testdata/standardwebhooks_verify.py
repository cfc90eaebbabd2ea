#!/usr/bin/env python3
"""Verifies webhooks with the reference Python implementation of Standard
Webhooks (PyPI package standardwebhooks), installing it first if needed.

Reads one JSON object per line on stdin: {"secret", "headers", "body"}.
Writes one line per object: "ok" or "error: <reason>".
"""
import json
import subprocess
import sys

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "standardwebhooks==1.1.0"], check=True)
    from standardwebhooks.webhooks import Webhook

for line in sys.stdin:
    case = json.loads(line)
    try:
        Webhook(case["secret"]).verify(case["body"], case["headers"])
        print("ok")
    except Exception as e:  # the library raises several kinds
        print("error: %s" % e)
    sys.stdout.flush()
