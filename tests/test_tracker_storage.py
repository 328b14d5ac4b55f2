"""The tracker's storage: packed points read like a list of named points, records with named fields."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.tracker.storage import ACTIVITIES, ClientFigures, Point, PointSeries, StoredRecord
from tests.records import GB, client_figures, record

points = st.lists(st.builds(Point, st.floats(0, 1e10), st.integers(0, 2 ** 53), st.floats(0, 100),
                            st.sampled_from(ACTIVITIES)), max_size=60)


@given(points=points, data=st.data())
def test_a_point_series_reads_and_changes_like_a_list_of_points(points, data):
    series, model = PointSeries(points), list(points)
    assert list(series) == model and list(reversed(series)) == model[::-1] and len(series) == len(model)
    assert [series.time(i) for i in range(len(series))] == [point.time for point in model]
    if model:
        index = data.draw(st.integers(-len(model), len(model) - 1))
        assert series[index] == model[index]
        series.delete(index)
        del model[index]
        cut = data.draw(st.integers(0, len(model)))
        series.delete_before(cut)
        del model[:cut]
    extra = Point(2e10, 5 * GB, 50.0, "active")
    series.append(extra)
    model.append(extra)
    assert list(series) == model and series[-1].activity == "active" and isinstance(series[-1].downloaded, int)


def test_a_point_series_refuses_an_index_out_of_range():
    with pytest.raises(IndexError):
        PointSeries([Point(1.0, 2, 3.0, "idle")])[1]
    assert not PointSeries()


def test_a_stored_record_keeps_what_the_tracker_reads_by_name_and_gives_it_back():
    message = record(7, "ABC", downloaded=GB, client=client_figures(2 * GB), indexer="Idx", eta="2026-11-30T12:00:00Z")
    stored = StoredRecord.from_message(message)
    assert (stored.id, stored.title, stored.eta, stored.indexer) == (7, "Download.ABC", "2026-11-30T12:00:00Z", "Idx")
    assert isinstance(stored.client, ClientFigures) and stored.client.client_state == "stalledDL"
    assert stored.sizes() == (10 * GB, 8 * GB)  # the client's own bytes win over the queue's
    kept = stored.as_message()
    assert kept["client"] == message["client"]
    assert {key: kept[key] for key in kept if key != "client"} == {key: message[key] for key in kept if key != "client"}
    assert StoredRecord.from_message(kept) == stored
