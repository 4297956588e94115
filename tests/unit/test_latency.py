from types import SimpleNamespace

from psmesh.latency import COMMIT_HEADER, commit_headers, commit_time_ms, passed_headers


def test_a_streamed_change_carries_its_commit_time_and_a_snapshot_row_does_not():
    streamed = {"source": {"ts_ms": 1764000000123, "snapshot": "false"}}
    assert commit_headers(streamed) == {COMMIT_HEADER: b"1764000000123"}
    assert commit_headers({"source": {"ts_ms": 1764000000123, "snapshot": "true"}}) is None
    assert commit_headers({"source": {"ts_ms": 1764000000123, "snapshot": "last"}}) is None
    assert commit_headers({}) is None


def test_the_header_is_passed_on_and_read_back_from_either_header_shape():
    event = SimpleNamespace(headers={COMMIT_HEADER: b"42", "other": b"x"})
    assert passed_headers(event) == {COMMIT_HEADER: b"42"}
    assert passed_headers(SimpleNamespace(headers={})) is None
    assert passed_headers(SimpleNamespace(headers=None)) is None
    assert commit_time_ms([("other", b"1"), (COMMIT_HEADER, b"42")]) == 42  # confluent-kafka's list of pairs
    assert commit_time_ms({COMMIT_HEADER: b"7"}) == 7
    assert commit_time_ms(None) is None
    assert commit_time_ms([(COMMIT_HEADER, b"not a number")]) is None
