from psmesh.latency import COMMIT_HEADER, commit_ms_of, commit_time_ms


def test_a_streamed_change_carries_its_commit_time_and_a_snapshot_row_does_not():
    streamed = {"source": {"ts_ms": 1764000000123, "snapshot": "false"}}
    assert commit_ms_of(streamed) == "1764000000123"  # as the router carries it with each forwarded row
    assert commit_ms_of({"source": {"ts_ms": 1764000000123, "snapshot": "true"}}) is None
    assert commit_ms_of({"source": {"ts_ms": 1764000000123, "snapshot": "last"}}) is None
    assert commit_ms_of({}) is None


def test_the_header_is_read_back_from_either_header_shape():
    assert commit_time_ms([("other", b"1"), (COMMIT_HEADER, b"42")]) == 42  # confluent-kafka's list of pairs
    assert commit_time_ms({COMMIT_HEADER: b"7"}) == 7
    assert commit_time_ms(None) is None
    assert commit_time_ms([(COMMIT_HEADER, b"not a number")]) is None
