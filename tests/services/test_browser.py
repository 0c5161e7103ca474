"""The web SPA in a real browser: Debian's Chromium, headless, driven by Playwright, against the
demo stack (the demo upstreams with their identity provider, web-bff verifying its tokens, the
built SPA served on its own origin).

Each state is also a screenshot under ``$BFF_TEST_OUTPUT`` (default ``test-output/``), so a
person can look at what the browser showed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_upstreams._demo import identity_env
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.processes import RunningService, free_port, run_service

from .conftest import Upstreams, bff_env

# Serial in ./run tests (Chromium is heavy, and the product must show well within a 2 s
# deadline); one worker under xdist alone: the site and browser are started once.
pytestmark = [pytest.mark.browser, pytest.mark.serial, pytest.mark.xdist_group("browser")]

REPO = Path(__file__).resolve().parents[2]
SPA = REPO / "apps" / "web-spa"
SHOTS = Path(os.environ.get("BFF_TEST_OUTPUT", REPO / "test-output")) / "browser"
#: web-bff's deadline here: long enough to see the product well before it, short for a test
DEADLINE_MS = 2000


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium not installed (./run tests installs Debian's chromium)")


@pytest.fixture(scope="module")
def spa_build() -> Path:
    """The SPA's build; made here when ./run tests has not made it (npm ci, npm run build)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm not installed: the SPA is built with Node.js and npm")
    if not (SPA / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=SPA, check=True)
    if not (SPA / "dist" / "index.html").is_file():
        subprocess.run([npm, "run", "build"], cwd=SPA, check=True)
    return SPA / "dist"


@pytest.fixture(scope="module")
def site(upstreams_process: RunningService, spa_build: Path) -> Iterator[str]:
    """web-bff (cache off, so each fault shows at once; identity on, as in the demo, verifying
    the demo provider's tokens) and the SPA on its own origin, signing in at that provider."""
    spa_port = free_port()
    origin = f"http://127.0.0.1:{spa_port}"
    env = bff_env(
        upstreams_process.url,
        BFF_CORS_ORIGINS=origin,
        BFF_TIMEOUT_MS=str(DEADLINE_MS),
        **identity_env(upstreams_process.url, "web-bff"),
    )
    with run_service("web_bff", env=env) as web:
        args = ["--dir", str(spa_build), "--bff-url", web.url]
        args += ["--identity-url", upstreams_process.url]
        with run_service("demo_upstreams.spa", args, port=spa_port):
            yield origin


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # As root (CI containers) Chromium's sandbox cannot start; it is a test browser.
        launched = playwright.chromium.launch(
            executable_path=chromium(), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_healthy_product_shows_every_part(site: str, page: Page, upstreams: Upstreams) -> None:
    page.goto(f"{site}/#/product/p-1001")
    expect(page.get_by_test_id("product-name")).to_have_text("Aurora ANC Wireless Headphones")
    expect(page.get_by_test_id("stock")).to_contain_text("In stock")
    expect(page.get_by_test_id("price")).to_contain_text("212.49")  # 249.99 less 15 %
    expect(page.get_by_test_id("reviews")).to_contain_text("4.6")
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "done")
    expect(page.locator("[data-testid^=part-notice-]")).to_have_count(0)
    shot(page, "product-healthy")


def test_with_the_reviews_hung_the_product_comes_first_and_the_reviews_say_so(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    upstreams.inject("reviews", hang=True)
    began = time.monotonic()
    page.goto(f"{site}/#/product/p-1002")
    expect(page.get_by_test_id("product-name")).to_be_visible(timeout=DEADLINE_MS)
    # The product is on screen while the reviews are still pending: it came first (no clock
    # read: how soon depends on the machine, the order does not).
    expect(page.get_by_test_id("part-notice-reviews")).to_have_count(0, timeout=1)
    expect(page.get_by_test_id("price")).to_be_visible()
    shot(page, "product-reviews-pending")
    notice = page.get_by_test_id("part-notice-reviews")
    expect(notice).to_be_visible(timeout=DEADLINE_MS + 3000)
    assert time.monotonic() - began >= DEADLINE_MS / 1000 * 0.9
    expect(page.get_by_test_id("product-name")).to_be_visible()  # still a page, not an error
    shot(page, "product-reviews-timed-out")


def test_with_the_product_service_failing_the_page_shows_the_problem(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    upstreams.inject("product", status=503)
    page.goto(f"{site}/#/product/p-1003")
    error = page.get_by_test_id("error-state")
    expect(error).to_be_visible()
    expect(error).to_contain_text("502")
    expect(page.get_by_test_id("product-name")).to_have_count(0)
    shot(page, "product-failed")
    upstreams.clear()
    page.goto(f"{site}/#/product/nope")
    expect(page.get_by_test_id("error-state")).to_contain_text("404")
    shot(page, "product-not-found")


def test_the_grid_shows_its_items_and_one_price_failure_on_its_item_only(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    ids = upstreams.get("/categories/audio")["product_ids"][:24]
    broken = ids[3]
    # The pricing service does not know that one product any more: its tile says so.
    upstreams.inject("pricing", status=404, ids=[broken])
    page.goto(f"{site}/#/category/audio")
    grid = page.get_by_test_id("grid")
    expect(grid).to_be_visible()
    expect(page.locator("[data-testid^=tile-p-]")).to_have_count(len(ids))
    expect(page.get_by_test_id(f"tile-notice-{broken}-pricing")).to_be_visible()
    expect(page.locator("[data-testid^=tile-notice-]")).to_have_count(1)
    expect(page.get_by_test_id(f"tile-{ids[0]}")).to_contain_text("€")
    shot(page, "grid-one-price-missing")


# The write path. The upstreams live for the whole session and keep carts and orders: each test
# signs in as its own user and starts from that user's empty cart.


def empty_cart(upstreams: Upstreams, user: str) -> None:
    for line in upstreams.get(f"/carts/{user}")["items"]:
        response = upstreams.client.put(
            f"{upstreams.url}/carts/{user}/items/{line['product_id']}", json={"quantity": 0}
        )
        response.raise_for_status()


def orders_of(upstreams: Upstreams, user: str) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = upstreams.get(f"/admin/orders?user={user}")["orders"]
    return orders


def lines_of(items: list[dict[str, Any]]) -> dict[str, int]:
    return {item["product_id"]: item["quantity"] for item in items}


def sign_in(page: Page, site: str, user: str) -> None:
    page.goto(f"{site}/#/")
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id(f"sign-in-{user}").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(user.capitalize())
    expect(page.get_by_test_id("cart-count")).to_have_text("0")


def add_to_cart(page: Page, site: str, product_id: str, count_after: int) -> None:
    page.goto(f"{site}/#/product/{product_id}")
    expect(page.get_by_test_id("product-name")).to_be_visible()
    page.get_by_test_id("add-to-cart").click()
    expect(page.get_by_test_id("cart-count")).to_have_text(str(count_after))


#: how many picks the SPA's home page asks for (`HOME_PICKS` in apps/web-spa/src/api/urls.ts)
HOME_PICKS = 12


def home_tiles(page: Page) -> list[str]:
    """The product ids of the home page's tiles, in order, once they have all arrived."""
    tiles = page.get_by_test_id("home-grid").locator("article.tile")
    expect(tiles).to_have_count(HOME_PICKS)
    ids: list[str] = tiles.evaluate_all("tiles => tiles.map(tile => tile.dataset.testid)")
    return [testid.removeprefix("tile-") for testid in ids]


def expect_picks(page: Page, picks: str, title: str) -> None:
    section = page.get_by_test_id("home-picks")
    expect(section).to_have_attribute("data-picks", picks)
    expect(section).to_have_attribute("data-status", "done")
    expect(page.get_by_test_id("home-picks-title")).to_have_text(title)


def test_signed_out_the_home_shows_the_best_sellers(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    best = upstreams.get("/recommendations/anonymous")["product_ids"][:HOME_PICKS]
    page.goto(f"{site}/#/")
    expect_picks(page, "best_sellers", "Best sellers")
    assert home_tiles(page) == best
    expect(page.locator(".category-card")).to_have_count(8)  # the categories stay
    # Signed out, a tile's "Add to cart" asks to sign in first.
    expect(page.get_by_test_id(f"sign-in-to-buy-{best[0]}")).to_be_visible()
    expect(page.locator("[data-testid^=add-to-cart]")).to_have_count(0)
    shot(page, "home-best-sellers")


def test_signing_in_and_out_changes_the_home_to_that_users_recommendations(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    best = upstreams.get("/recommendations/anonymous")["product_ids"][:HOME_PICKS]
    picks = {
        user: upstreams.get(f"/recommendations/{user}")["product_ids"][:HOME_PICKS]
        for user in ("alice", "bob")
    }
    assert len({tuple(best), tuple(picks["alice"]), tuple(picks["bob"])}) == 3
    for user in picks:
        empty_cart(upstreams, user)
    upstreams.clear()

    sign_in(page, site, "alice")
    expect_picks(page, "personal", "Recommended for you")
    assert home_tiles(page) == picks["alice"]
    expect(page.get_by_test_id(f"add-to-cart-{picks['alice'][0]}")).to_be_enabled()
    shot(page, "home-recommended-for-alice")
    # The BFF asked the recommendations service for Alice's, as the verified token's subject.
    asked = [r["path"] for r in upstreams.requests("recommendations")]
    assert "/recommendations/alice" in asked, asked

    page.get_by_role("button", name="Sign out").click()
    expect_picks(page, "best_sellers", "Best sellers")
    assert home_tiles(page) == best
    shot(page, "home-signed-out-again")

    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("sign-in-bob").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text("Bob")
    expect_picks(page, "personal", "Recommended for you")
    assert home_tiles(page) == picks["bob"]
    shot(page, "home-recommended-for-bob")


def test_add_to_cart_from_a_category_tile_and_a_home_tile_counts_in_the_header(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    ids = upstreams.get("/categories/audio")["product_ids"][:2]
    recommended = upstreams.get("/recommendations/bob")["product_ids"][0]
    empty_cart(upstreams, "bob")
    try:
        sign_in(page, site, "bob")
        page.goto(f"{site}/#/category/audio")
        expect(page.get_by_test_id("grid")).to_be_visible()
        page.get_by_test_id(f"add-to-cart-{ids[0]}").click()
        expect(page.get_by_test_id("cart-count")).to_have_text("1")
        expect(page.get_by_test_id(f"in-cart-{ids[0]}")).to_have_text("1 in cart")
        # The button is not the tile's link: the grid stays.
        assert page.url.endswith("#/category/audio"), page.url
        expect(page.get_by_test_id("category-page")).to_be_visible()
        page.get_by_test_id(f"add-to-cart-{ids[1]}").click()
        expect(page.get_by_test_id("cart-count")).to_have_text("2")
        shot(page, "grid-added-to-cart")

        page.locator("a.brand").click()  # the header's link home
        expect_picks(page, "personal", "Recommended for you")
        page.get_by_test_id(f"add-to-cart-{recommended}").click()
        expected = {ids[0]: 1, ids[1]: 1}
        expected[recommended] = expected.get(recommended, 0) + 1
        expect(page.get_by_test_id("cart-count")).to_have_text(str(sum(expected.values())))
        expect(page.get_by_test_id("home-page")).to_be_visible()
        shot(page, "home-added-to-cart")
        assert lines_of(upstreams.get("/carts/bob")["items"]) == expected

        # A click elsewhere on a tile (its picture) still opens its product.
        page.get_by_test_id(f"tile-{recommended}").click(position={"x": 30, "y": 30})
        expect(page.get_by_test_id("product-page")).to_be_visible()
        assert page.url.endswith(f"#/product/{recommended}"), page.url
    finally:
        empty_cart(upstreams, "bob")


def test_sign_in_fill_a_cart_and_place_the_order(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    empty_cart(upstreams, "alice")
    placed_before = len(orders_of(upstreams, "alice"))
    sign_in(page, site, "alice")
    shot(page, "signed-in")
    add_to_cart(page, site, "p-1001", 1)
    shot(page, "product-added-to-cart")
    add_to_cart(page, site, "p-1002", 2)

    page.get_by_test_id("cart-link").click()
    expect(page.locator("[data-testid^=cart-line-]")).to_have_count(2)
    headphones = page.get_by_test_id("cart-line-p-1001")
    expect(headphones).to_contain_text("Aurora ANC Wireless Headphones")
    expect(headphones).to_contain_text("212.49")
    expect(headphones.locator(".product-image")).to_have_count(1)  # its picture, or its initial
    shot(page, "cart-two-products")
    page.get_by_test_id("increase-p-1001").click()
    expect(page.get_by_test_id("quantity-p-1001")).to_have_text("2")
    expect(page.get_by_test_id("line-total-p-1001")).to_contain_text("424.98")
    expect(page.get_by_test_id("cart-count")).to_have_text("3")
    assert lines_of(upstreams.get("/carts/alice")["items"]) == {"p-1001": 2, "p-1002": 1}
    shot(page, "cart-quantity-changed")

    page.get_by_test_id("place-order").click()
    expect(page.get_by_test_id("order-page")).to_be_visible()
    expect(page.get_by_test_id("order-status")).to_have_text("placed")
    order_id = page.get_by_test_id("order-id").inner_text()
    expect(page.get_by_test_id("cart-count")).to_have_text("0")
    shot(page, "order-confirmation")
    orders = orders_of(upstreams, "alice")
    assert len(orders) == placed_before + 1
    assert orders[-1]["id"] == order_id
    assert lines_of(orders[-1]["items"]) == {"p-1001": 2, "p-1002": 1}

    page.get_by_test_id("cart-link").click()
    expect(page.get_by_test_id("cart-empty")).to_be_visible()
    assert upstreams.get("/carts/alice")["items"] == []
    shot(page, "cart-empty-after-order")


def test_a_double_click_on_place_order_places_one_order(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    empty_cart(upstreams, "bob")
    placed_before = len(orders_of(upstreams, "bob"))
    sign_in(page, site, "bob")
    add_to_cart(page, site, "p-1003", 1)
    page.goto(f"{site}/#/cart")
    expect(page.get_by_test_id("cart-line-p-1003")).to_be_visible()
    # Slow orders: the second click lands while the first request is still running.
    upstreams.inject("orders", latency_ms=600)
    page.get_by_test_id("place-order").dblclick()
    expect(page.get_by_test_id("order-page")).to_be_visible()
    shot(page, "order-after-double-click")
    assert len(orders_of(upstreams, "bob")) == placed_before + 1
    posts = [r for r in upstreams.requests("orders") if r.get("method") == "POST"]
    assert len(posts) == 1, posts


def counted(reviews: int) -> str:
    """How the reviews panel says the count (`out of 5 · 1 review`)."""
    return f"· {reviews:,} {'review' if reviews == 1 else 'reviews'}"


def test_a_review_written_on_the_product_page_is_counted(
    site: str, page: Page, upstreams: Upstreams
) -> None:
    sign_in(page, site, "carol")
    before = upstreams.get("/reviews/p-1006")["count"]
    page.goto(f"{site}/#/product/p-1006")
    reviews = page.get_by_test_id("reviews")
    expect(reviews).to_contain_text(counted(before))
    page.get_by_test_id("review-stars-4").check()
    page.get_by_test_id("review-text").fill("Sturdy, and it arrived a day early.")
    shot(page, "review-form-filled")
    page.get_by_test_id("review-submit").click()
    expect(page.get_by_test_id("review-written")).to_be_visible()
    expect(reviews).to_contain_text(counted(before + 1))
    shot(page, "review-counted")
    assert upstreams.get("/reviews/p-1006")["count"] == before + 1
