"""Long-running processes freeze their start-up heap and widen the collector's young generation."""

from __future__ import annotations

import gc

import pytest

from watercooler import gc_tuning


@pytest.fixture
def collector_restored():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_service_tuning_freezes_the_start_up_heap_and_widens_the_young_generation(collector_restored, monkeypatch):
    monkeypatch.delenv("WC_GC_TUNING", raising=False)
    gc.unfreeze()
    gc_tuning.tune_for_service()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, gc_tuning.MIDDLE_THRESHOLD, gc_tuning.OLD_THRESHOLD)
    assert gc.isenabled()  # cyclic garbage is still collected


def test_tuning_can_be_turned_off_to_measure_against(collector_restored, monkeypatch):
    monkeypatch.setenv("WC_GC_TUNING", "0")
    before = gc.get_threshold()
    gc.unfreeze()
    gc_tuning.tune_for_service()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
