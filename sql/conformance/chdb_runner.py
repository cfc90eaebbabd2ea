"""Runs ClickHouse statements in chdb (ClickHouse embedded in-process) for
the conformance test: one JSON request per line on stdin, one JSON answer
per line on stdout.

  request:  {"sql": "SELECT ...", "database": "db", "setup": [...], "cleanup": [...]}
            (database, setup and cleanup optional: the statement runs in
            database, after the setup statements, and the cleanup ones run
            after it whatever its outcome)
  answer:   {"ok": true, "out": "<TabSeparated result>"}
            {"ok": false, "error": "<the server's message>"}

The first request may be {"version": true}, answered with the embedded
server's version() in "out". The session lives in the directory given as
the first argument, with the database given as the second as its default.
"""
import json
import sys

from chdb import session


def main():
    path, database = sys.argv[1], sys.argv[2]
    s = session.Session(path)
    s.query("CREATE DATABASE IF NOT EXISTS " + database)
    s.query("USE " + database)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req.get("version"):
                out = s.query("SELECT version()", "TabSeparated").data()
            else:
                s.query("USE " + req.get("database", database))
                try:
                    for stmt in req.get("setup") or []:
                        s.query(stmt)
                    out = s.query(req["sql"], "TabSeparated").data()
                finally:
                    for stmt in req.get("cleanup") or []:
                        s.query(stmt)
            ans = {"ok": True, "out": out}
        except Exception as e:  # every refusal is reported, none is fatal
            ans = {"ok": False, "error": str(e)}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
