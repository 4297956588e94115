"""``psmesh status``'s options are checked before it reads anything: a usage error, not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from psmesh.cli import main


@pytest.mark.parametrize("args, says", [
    (["--watch", "-1"], "Invalid value for '--watch': -1.0 is not in the range"),
    (["--watch", "0"], "Invalid value for '--watch': 0.0 is not in the range"),
    (["--max-slot-lag-mb", "nan"], "Invalid value for '--max-slot-lag-mb': must be a number, not nan"),
    (["--max-slot-lag-mb", "-3"], "Invalid value for '--max-slot-lag-mb': -3.0 is not in the range"),
    (["--max-consumer-lag", "-5"], "Invalid value for '--max-consumer-lag': -5 is not in the range x>=0"),
])
def test_an_option_out_of_range_is_a_usage_error(args, says):
    result = CliRunner().invoke(main, ["status", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_the_registry_check_tries_each_url_of_a_list_as_the_registry_client_does(monkeypatch):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from psmesh.config import Settings
    from psmesh.status import _registry

    class Subjects(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps(["crm.public.accounts-value"]).encode()
            self.send_response(200 if self.path == "/subjects" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Subjects)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        checks: list = []
        _registry(Settings(registry_url=f"http://127.0.0.1:1, {url}/"), checks)
        assert [(c.state, c.detail) for c in checks] == [("ok", f"1 subjects at {url}")]
        checks.clear()
        _registry(Settings(registry_url="http://127.0.0.1:1,http://127.0.0.1:2"), checks)
        [check] = checks
        assert check.state == "fail" and "http://127.0.0.1:1: " in check.detail and "http://127.0.0.1:2: " in check.detail
    finally:
        server.shutdown()
