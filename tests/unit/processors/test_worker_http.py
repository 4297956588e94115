"""Where the worker's HTTP port listens (its views carry the firm's figures), and the index of its views."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

from processors.app import VIEW_KEYS, Processors
from psmesh.cli import main
from psmesh.config import Settings, is_loopback, worker_bind
from psmesh.stack.services import processor_service


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.1", "localhost", "LocalHost", "localhost.", "::1",
                                  "[::1]", "::ffff:127.0.0.1"])
def test_loopback_names_and_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "worker-2.internal", "::", "", None])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("unset", [None, ""])
def test_a_worker_on_one_host_listens_on_loopback_only(unset):
    assert worker_bind(unset, "http://127.0.0.1:6066") == "127.0.0.1"
    assert worker_bind(unset, "http://localhost:6066") == "127.0.0.1"
    assert worker_bind(unset, "http://[::1]:6066") == "::1"


def test_a_worker_the_others_reach_on_another_host_listens_on_every_interface():
    assert worker_bind(None, "http://worker-2.internal:6066") == "0.0.0.0"
    assert worker_bind(None, "http://10.0.0.5:6066") == "0.0.0.0"
    assert worker_bind(None, "http://[2001:db8::5]:6066") == "::"


def test_an_interface_given_is_kept():
    assert worker_bind("0.0.0.0", "http://127.0.0.1:6066") == "0.0.0.0"
    assert worker_bind("127.0.0.2", "http://127.0.0.2:6066") == "127.0.0.2"
    assert worker_bind("10.0.0.5", "http://worker-2.internal:6066") == "10.0.0.5"
    assert worker_bind("10.0.0.5", "http://10.0.0.5:6066") == "10.0.0.5"
    assert worker_bind("[::1]", "http://[::1]:6066") == "::1"
    assert worker_bind("::", "http://[2001:db8::5]:6066") == "::"
    assert worker_bind("10.0.0.5", "http://203.0.113.7:6066") == "10.0.0.5"  # NAT may bring the URL here


@pytest.mark.parametrize("host, bound", [("[::1]", "::1"), ("127.1", "127.0.0.1"), ("::ffff:127.0.0.1", "127.0.0.1"),
                                         ("localhost.", "localhost"), ("0", "0.0.0.0"), ("::0", "::")])
def test_the_interface_is_given_as_a_server_binds_it(host, bound):
    url = "http://[::1]:6066" if bound == "::1" else "http://127.0.0.1:6066"
    if bound == "::":
        url = "http://[2001:db8::5]:6066"
    assert worker_bind(host, url) == bound


@pytest.mark.parametrize("host, url", [
    ("127.0.0.1", "http://worker-2.internal:6066"),  # the others cannot reach a loopback
    ("10.0.0.5", "http://127.0.0.1:6066"),  # nor the URL's loopback a worker on another interface
    ("::1", "http://127.0.0.1:6066"),
    ("127.0.0.2", "http://localhost:6066"),  # localhost is 127.0.0.1 (and perhaps ::1), not 127.0.0.2
    ("localhost", "http://127.0.0.2:6066"),
    ("0.0.0.0", "http://[2001:db8::5]:6066"),  # every IPv4 interface, an IPv6 URL
    ("::", "http://10.0.0.5:6066"),  # every IPv6 interface (IPV6_V6ONLY), an IPv4 URL
])
def test_an_interface_where_the_url_cannot_reach_the_worker_is_refused(host, url):
    with pytest.raises(ValueError, match=f"cannot reach its URL {url.replace('[', '.').replace(']', '.')}"):
        worker_bind(host, url)


def test_the_metrics_host_does_not_move_the_worker(tmp_path: Path, monkeypatch):
    """PSMESH_METRICS_HOST is every interface by default, and the stack exports it to every child: were it the
    worker's fallback, the views would listen everywhere again."""
    monkeypatch.delenv("PSMESH_PROCESSORS_HOST", raising=False)
    monkeypatch.setenv("PSMESH_METRICS_HOST", "0.0.0.0")
    worker = Processors(Settings(home=tmp_path), web_port=6994, datadir=tmp_path / "m", store="memory://")
    assert worker.app.conf.web_bind == "127.0.0.1"


def test_the_stack_starts_the_worker_where_its_health_check_looks(tmp_path: Path, monkeypatch):
    for var in ("PSMESH_PROCESSORS_HOST", "PSMESH_METRICS_HOST", "PSMESH_PROCESSORS_URL"):
        monkeypatch.delenv(var, raising=False)
    local = processor_service(Settings(home=tmp_path))
    assert local.argv[-4:] == ["--host", "127.0.0.1", "--url", f"http://127.0.0.1:{local.port}"]
    shared = processor_service(Settings(home=tmp_path, bind_host="10.0.0.5"))
    assert shared.argv[-4:] == ["--host", "10.0.0.5", "--url", f"http://10.0.0.5:{shared.port}"]
    assert shared.address == f"http://10.0.0.5:{shared.port}/metrics"
    worker_bind("10.0.0.5", f"http://10.0.0.5:{shared.port}")  # what the worker then checks: accepted
    for bind_host in ("0.0.0.0", "::", "::1"):  # every interface, or IPv6: a URL the worker answers at
        argv = processor_service(Settings(home=tmp_path, bind_host=bind_host)).argv
        worker_bind(argv[argv.index("--host") + 1], argv[argv.index("--url") + 1])


def test_the_worker_listens_where_worker_bind_says(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PSMESH_PROCESSORS_HOST", raising=False)
    monkeypatch.delenv("PSMESH_METRICS_HOST", raising=False)
    settings = Settings(home=tmp_path)
    local = Processors(settings, web_port=6998, datadir=tmp_path / "a", store="memory://")
    assert local.app.conf.web_bind == "127.0.0.1"
    remote = Processors(settings, web_port=6997, datadir=tmp_path / "b", store="memory://",
                        url="http://worker-2.internal:6997")
    assert remote.app.conf.web_bind == "0.0.0.0"
    configured = Processors(Settings(home=tmp_path, processors_host="0.0.0.0"), web_port=6996,
                            datadir=tmp_path / "c", store="memory://")
    assert configured.app.conf.web_bind == "0.0.0.0"


def test_run_refuses_a_loopback_host_for_a_url_on_another_host(monkeypatch):
    monkeypatch.delenv("PSMESH_PROCESSORS_HOST", raising=False)
    monkeypatch.delenv("PSMESH_METRICS_HOST", raising=False)
    result = CliRunner().invoke(main, ["processors", "run", "--host", "127.0.0.1", "--url",
                                       "http://worker-2.internal:6066"])
    assert result.exit_code == 2
    assert "--host" in result.output and "http://worker-2.internal:6066" in result.output


class Web:
    def json(self, value, status: int = 200):
        return status, value


def test_the_index_lists_every_view_with_its_key_and_addresses(tmp_path: Path):
    processors = Processors(Settings(home=tmp_path), web_port=6995, datadir=tmp_path / "d", store="memory://")
    status, body = asyncio.run(processors._views_index(Web(), None))
    assert status == 200
    assert set(body["views"]) == set(VIEW_KEYS)
    risks = body["views"]["project_risks"]
    assert risks == {"key": ["project_code", "rule"], "rows": "http://127.0.0.1:6995/views/project_risks/",
                     "row": "http://127.0.0.1:6995/views/project_risks/<project_code|rule>"}
