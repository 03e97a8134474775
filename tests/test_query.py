from onepunch.config import DomainQuery
from onepunch.query import why_not
from onepunch.sources import Record


def rec(*tags, rating="s", w=800, h=600, ext="jpg"):
    return Record(id="1", tags=tags, rating=rating, width=w, height=h, ext=ext)


def test_exact_tag_names_only():
    q = DomainQuery(all_of=("hat",))
    assert why_not(q, rec("hat_ribbon")) == "all_of"
    assert why_not(q, rec("hat")) is None
    assert why_not(DomainQuery(none_of=("hat",)), rec("hat_ribbon")) is None


def test_all_any_none():
    q = DomainQuery(all_of=("monochrome",), any_of=("lineart", "comic"), none_of=("spot_color",))
    assert why_not(q, rec("monochrome", "comic")) is None
    assert why_not(q, rec("monochrome")) == "any_of"
    assert why_not(q, rec("comic")) == "all_of"
    assert why_not(q, rec("monochrome", "comic", "spot_color")) == "none_of"


def test_rating_size_aspect_and_type():
    q = DomainQuery(ratings=("s",), min_side=512, min_aspect=0.5, max_aspect=2.0)
    assert why_not(q, rec(rating="e")) == "rating"
    assert why_not(q, rec(rating=None)) is None  # plain folders carry no rating
    assert why_not(q, rec(w=800, h=300)) == "min_side"
    assert why_not(q, rec(w=2000, h=600)) == "aspect"
    assert why_not(q, rec(w=None, h=None)) is None  # unknown size: checked after decode
    assert why_not(q, rec(ext="webm")) == "not_an_image_type"
