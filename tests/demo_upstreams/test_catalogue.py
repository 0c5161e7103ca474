"""The catalogue: the twelve hand-written products unchanged, the generated ones plausible and
the same in every run, and the lists (categories, best sellers, recommendations) made from it."""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from demo_upstreams import CATEGORY_SLUGS, PRODUCT_IDS
from demo_upstreams._catalogue import (
    ANONYMOUS_USER,
    BEST_SELLERS,
    CATALOGUE,
    CATEGORIES,
    LONG_DESCRIPTION_IDS,
    NO_REVIEWS_ID,
    OUT_OF_STOCK_ID,
    RECOMMENDATION_COUNT,
    CatalogueEntry,
    recommendations_for,
)

# The SHA-256 of the twelve hand-written entries, JSON-encoded: the BFFs' tests and the docs'
# examples (byte counts included) are written against them, so they must not change by accident.
_HAND_WRITTEN_SHA256 = "a673f85e3c18765c168626487d768403f7126ea999e12e6f97bddba6a27a5fbe"

_ROOT = Path(__file__).resolve().parents[2]
_DIGEST_SCRIPT = """
from tests.demo_upstreams.test_catalogue import digest
print(digest())
"""


def digest() -> str:
    """A digest of everything generated, to compare between processes."""
    data = [CATALOGUE, CATEGORIES, recommendations_for("alice"), recommendations_for("bob")]
    return hashlib.sha256(msgspec.json.encode(data)).hexdigest()


def test_about_three_hundred_products_with_sequential_ids() -> None:
    assert len(PRODUCT_IDS) == 300
    assert list(PRODUCT_IDS) == [f"p-{n}" for n in range(1001, 1301)]
    assert {OUT_OF_STOCK_ID, NO_REVIEWS_ID, *LONG_DESCRIPTION_IDS} <= set(PRODUCT_IDS[:12])


def test_the_hand_written_products_are_unchanged() -> None:
    encoded = msgspec.json.encode(CATALOGUE[:12])
    assert hashlib.sha256(encoded).hexdigest() == _HAND_WRITTEN_SHA256


def test_every_category_holds_at_least_thirty() -> None:
    per_category = collections.Counter(entry.product.category for entry in CATALOGUE)
    assert set(per_category) == set(CATEGORY_SLUGS)
    assert CATEGORY_SLUGS == (
        "audio",
        "outdoor",
        "kitchen",
        "apparel",
        "home",
        "computing",
        "sports",
        "photo",
    )
    assert min(per_category.values()) >= 30


def test_generated_products_are_plausible() -> None:
    for entry in CATALOGUE[12:]:
        _check_plausible(entry)


def _check_plausible(entry: CatalogueEntry) -> None:
    product, inventory, price, reviews = entry.product, entry.inventory, entry.price, entry.reviews
    pid = product.id
    assert (inventory.product_id, price.product_id, reviews.product_id) == (pid, pid, pid)
    assert product.name, pid
    assert 0 < len(product.description) < 200, pid
    assert 1 <= len(product.images) <= 3, pid
    assert all(
        url.startswith(f"https://images.example.com/products/{pid}/") for url in product.images
    )
    brand = product.attributes["brand"]
    assert isinstance(brand, str), pid
    assert product.name.startswith(brand + " "), pid
    assert inventory.quantity == sum(w.qty for w in inventory.warehouses), pid
    assert inventory.in_stock is (inventory.quantity > 0), pid
    assert {w.id for w in inventory.warehouses} <= {"wh-berlin", "wh-lyon", "wh-milan"}, pid
    assert price.currency == "EUR", pid
    assert price.amount > 0, pid
    assert 0 <= price.discount_pct <= 30, pid
    assert 0 <= len(reviews.top) <= min(3, reviews.count), pid
    if reviews.count:
        assert 1.0 <= reviews.average <= 5.0, pid
    else:
        assert reviews.average == 0.0, pid
    assert all(1 <= review.stars <= 5 for review in reviews.top), pid
    assert len({review.text for review in reviews.top}) == len(reviews.top), pid


def test_names_are_unique() -> None:
    assert len({entry.product.name for entry in CATALOGUE}) == len(CATALOGUE)


def test_the_generated_part_has_some_edge_cases_too() -> None:
    generated = CATALOGUE[12:]
    assert any(not entry.inventory.in_stock for entry in generated)
    assert any(entry.reviews.count == 0 for entry in generated)
    assert any(entry.price.discount_pct for entry in generated)
    assert {len(entry.product.images) for entry in generated} == {1, 2, 3}
    assert {len(entry.reviews.top) for entry in generated} == {0, 1, 2, 3}


def test_best_sellers_are_by_review_count_then_id() -> None:
    counts = {entry.product.id: entry.reviews.count for entry in CATALOGUE}
    assert sorted(BEST_SELLERS) == sorted(PRODUCT_IDS)
    keys = [(-counts[pid], pid) for pid in BEST_SELLERS]
    assert keys == sorted(keys)


def test_categories_list_their_products_best_sellers_first() -> None:
    category_of = {entry.product.id: entry.product.category for entry in CATALOGUE}
    assert [category.slug for category in CATEGORIES] == list(CATEGORY_SLUGS)
    listed = [pid for category in CATEGORIES for pid in category.product_ids]
    assert sorted(listed) == sorted(PRODUCT_IDS)  # each product in exactly one category
    for category in CATEGORIES:
        assert category.name == category.slug.capitalize()
        assert all(category_of[pid] == category.slug for pid in category.product_ids)
        assert list(category.product_ids) == [
            pid for pid in BEST_SELLERS if category_of[pid] == category.slug
        ]


def test_recommendations() -> None:
    assert recommendations_for(ANONYMOUS_USER) == BEST_SELLERS[:RECOMMENDATION_COUNT]
    users = ["alice", "bob", "Alice", "u-1", "u-2", "a/b", "é", ""]
    picks = {user: recommendations_for(user) for user in users}
    for user, ids in picks.items():
        assert len(ids) == RECOMMENDATION_COUNT, user
        assert len(set(ids)) == RECOMMENDATION_COUNT, user
        assert set(ids) <= set(PRODUCT_IDS), user
        assert recommendations_for(user) == ids  # stable within a run
    assert len(set(picks.values())) == len(users)  # and different per user


@pytest.mark.process
def test_the_same_in_every_process() -> None:
    # Different hash seeds: nothing may depend on the per-process salt of hash().
    digests = {digest()}
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            cwd=_ROOT,
            timeout=60,
            check=True,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1
