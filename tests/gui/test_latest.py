"""LatestRequest: one computation at a time; requests made meanwhile collapse into one."""

from napari_unet._widgets._latest import LatestRequest


def test_requests_during_a_computation_run_once_after_it_and_nothing_runs_twice_at_once():
    started = []

    def start(finished):
        started.append(finished)
        return object()  # a stand-in worker

    latest = LatestRequest(start)
    latest()
    assert len(started) == 1 and latest.worker is not None
    latest(), latest(), latest()  # three strokes while it computes
    assert len(started) == 1  # none started beside it
    started[0]()  # it finishes: the latest request runs, once
    assert len(started) == 2 and latest.worker is not None
    started[1]()  # that one finishes with nothing waiting
    assert len(started) == 2 and latest.worker is None


def test_nothing_to_compute_leaves_it_idle():
    latest = LatestRequest(lambda finished: None)
    latest()
    assert latest.worker is None
    latest()  # and a later request is not held back
    assert latest.worker is None
