"""Tag queries: does a record belong to a domain? Exact tag names only (`hat` never matches `hat_ribbon`)."""

from __future__ import annotations

from onepunch.config import DomainQuery
from onepunch.sources import IMAGE_EXTS, Record


def why_not(q: DomainQuery, r: Record) -> str | None:
    """None if the record matches the query, else the name of the first rule that excluded it."""
    if r.ext and r.ext not in IMAGE_EXTS:
        return "not_an_image_type"
    tags = set(r.tags)
    if q.ratings and r.rating is not None and r.rating not in q.ratings:
        return "rating"
    if not tags.issuperset(q.all_of):
        return "all_of"
    if q.any_of and tags.isdisjoint(q.any_of):
        return "any_of"
    if not tags.isdisjoint(q.none_of):
        return "none_of"
    if r.width and r.height:
        if min(r.width, r.height) < q.min_side:
            return "min_side"
        aspect = r.width / r.height
        if (q.min_aspect and aspect < q.min_aspect) or (q.max_aspect and aspect > q.max_aspect):
            return "aspect"
    return None
