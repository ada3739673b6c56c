#!/usr/bin/env python3
"""An external program as a Cohort process, over a `cohort node`'s WebSocket.

The program attaches to the node's admin API (`/attach`), becomes a process
of that node, registers a global name, joins a process group, and answers
every message it gets: the text upper-cased, sent by name to `--reply-to`.
The message `stop` ends it. Standard library plus the `websockets` package
(`pip install websockets`).

    cohort node --name a@127.0.0.1 &          # prints its admin address
    python3 attach.py --admin 127.0.0.1:4370 --name py-echo --reply-to someone

The token is read as `cohort ctl` reads it: COHORT_ADMIN_TOKEN, else
--token-file, else ~/.cohort.admin-token. Prints `ready PID` once the name
and the membership are in place, then one line per message.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from websockets.sync.client import connect


def token(args):
    if os.environ.get("COHORT_ADMIN_TOKEN"):
        return os.environ["COHORT_ADMIN_TOKEN"]
    path = Path(args.token_file or Path.home() / ".cohort.admin-token")
    return path.read_text().splitlines()[0].strip()


# Events that are not answers to a command: they may arrive while a command
# waits for its answer, and are handled after it.
UNASKED = ("message", "pg", "down", "name_lost", "conflict", "exit")


def call(ws, command, later):
    """Sends one command and returns its answer, reporting refusals; events
    that arrive meanwhile go to `later`."""
    ws.send(json.dumps(command))
    while True:
        answer = json.loads(ws.recv(timeout=10))
        if answer.get("event") in UNASKED:
            later.append(answer)
            continue
        if answer.get("event") == "error":
            sys.exit(f"{command['op']} refused: {answer['error']}")
        return answer


def events(ws, later):
    """The events held back by `call`, then the ones still to come."""
    while True:
        if later:
            yield later.pop(0)
        else:
            yield json.loads(ws.recv())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--admin", default="127.0.0.1:4370", help="the node's admin HOST:PORT")
    p.add_argument("--token-file")
    p.add_argument("--name", default="py-echo", help="the global name to register")
    p.add_argument("--group", default="demo/echo", help="SCOPE/GROUP to join")
    p.add_argument("--reply-to", required=True, help="the name answers are sent to")
    args = p.parse_args()
    scope, group = args.group.split("/", 1)

    headers = {"Authorization": f"Bearer {token(args)}"}
    with connect(f"ws://{args.admin}/attach", additional_headers=headers) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["event"] == "ready", hello
        later = []
        call(ws, {"op": "register", "name": args.name}, later)
        call(ws, {"op": "join", "scope": scope, "group": group}, later)
        print("ready", hello["pid"], flush=True)
        for event in events(ws, later):
            kind = event.get("event")
            if kind == "message":
                text = event["message"]
                print("got", text, flush=True)
                if text == "stop":
                    return 0
                call(ws, {"op": "send", "name": args.reply_to, "message": text.upper()}, later)
            elif kind in ("name_lost", "conflict", "exit"):
                sys.exit(f"lost: {event}")
            # Other events (a monitor's, say) do not concern this program.


if __name__ == "__main__":
    sys.exit(main())
