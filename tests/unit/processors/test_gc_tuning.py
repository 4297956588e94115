"""The worker's cycle collector settings (processors/app.py, ``tune_gc``) and their metrics."""

import gc

from prometheus_client import generate_latest

from processors.app import GC_THRESHOLDS, Metrics, tune_gc


def test_tune_gc_sets_the_thresholds_and_freezes_what_is_loaded():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        # a young collection is rarer than CPython's default of 700 allocations, and a full one rarer still
        assert GC_THRESHOLDS[0] > 700 and GC_THRESHOLDS[0] * GC_THRESHOLDS[1] * GC_THRESHOLDS[2] > 700 * 10 * 10
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_frozen_object_is_still_freed_by_reference_counting():
    import weakref

    class Row:
        pass

    before = gc.get_threshold()
    row = Row()
    ref = weakref.ref(row)
    try:
        tune_gc()
        del row
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_metrics_page_shows_the_collector():
    page = generate_latest(Metrics.create().registry).decode()
    assert "python_gc_collections_total" in page
    assert "python_gc_objects_collected_total" in page
