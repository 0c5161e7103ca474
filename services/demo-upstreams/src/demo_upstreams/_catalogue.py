"""The simulated catalogue: what the demo services know about.

Three hundred products in eight categories. The first twelve, ``p-1001`` to ``p-1012``, are
written by hand, and a few of them are deliberately unusual so the BFFs' edge cases are
reachable without fault injection:

* ``p-1001`` and ``p-1002`` have long descriptions and five or six images, so a trimmed mobile
  payload is visibly smaller than the full web one;
* ``p-1004`` is out of stock (every warehouse at zero);
* ``p-1006`` has no reviews yet.

The rest, ``p-1013`` to ``p-1300``, are generated so that list screens (a category, a user's
recommendations) have pages of real-looking products to show: each is derived from its own id
alone (a ``random.Random`` seeded with it), so the catalogue is the same in every run and
process, and editing one template does not reshuffle the others.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Mapping
from typing import Final, NamedTuple

import msgspec

__all__ = [
    "ANONYMOUS_USER",
    "BEST_SELLERS",
    "CATALOGUE",
    "CATEGORIES",
    "CATEGORY_SLUGS",
    "LONG_DESCRIPTION_IDS",
    "NO_REVIEWS_ID",
    "OUT_OF_STOCK_ID",
    "PRODUCT_IDS",
    "RECOMMENDATION_COUNT",
    "CatalogueEntry",
    "Category",
    "CategorySummary",
    "Inventory",
    "Price",
    "Product",
    "Recommendations",
    "Review",
    "Reviews",
    "Warehouse",
    "recommendations_for",
]

AttributeValue = str | int | float | bool


class Product(msgspec.Struct, frozen=True):
    """What the product service answers for one id."""

    id: str
    name: str
    description: str
    category: str
    images: tuple[str, ...]
    attributes: dict[str, AttributeValue]


class Warehouse(msgspec.Struct, frozen=True):
    """Stock of one product in one warehouse."""

    id: str
    qty: int


class Inventory(msgspec.Struct, frozen=True):
    """What the inventory service answers for one id."""

    product_id: str
    in_stock: bool
    quantity: int
    warehouses: tuple[Warehouse, ...]


class Price(msgspec.Struct, frozen=True):
    """What the pricing service answers for one id; ``amount`` is in minor units (cents)."""

    product_id: str
    currency: str
    amount: int
    discount_pct: int


class Review(msgspec.Struct, frozen=True):
    """One customer review."""

    author: str
    stars: int
    text: str


class Reviews(msgspec.Struct, frozen=True):
    """What the reviews service answers for one id, in its single and its batch read."""

    product_id: str
    average: float
    count: int
    top: tuple[Review, ...]


class CatalogueEntry(msgspec.Struct, frozen=True):
    """Everything the four product services know about one product."""

    product: Product
    inventory: Inventory
    price: Price
    reviews: Reviews


class Category(msgspec.Struct, frozen=True):
    """What the category service answers for one slug: its products, best sellers first."""

    slug: str
    name: str
    product_ids: tuple[str, ...]


class CategorySummary(msgspec.Struct, frozen=True):
    """One element of the category service's list of categories."""

    slug: str
    name: str
    count: int


class Recommendations(msgspec.Struct, frozen=True):
    """What the recommendations service answers for one user."""

    user: str
    product_ids: tuple[str, ...]


def _images(product_id: str, *names: str) -> tuple[str, ...]:
    return tuple(f"https://images.example.com/products/{product_id}/{name}.jpg" for name in names)


def _stock(product_id: str, **per_warehouse: int) -> Inventory:
    # Derived from the warehouses so the totals can never disagree with the breakdown.
    warehouses = tuple(
        Warehouse(id=wid.replace("_", "-"), qty=q) for wid, q in per_warehouse.items()
    )
    quantity = sum(w.qty for w in warehouses)
    return Inventory(
        product_id=product_id, in_stock=quantity > 0, quantity=quantity, warehouses=warehouses
    )


def _reviews(product_id: str, average: float, count: int, *top: Review) -> Reviews:
    return Reviews(product_id=product_id, average=average, count=count, top=top)


def _entry(
    product: Product,
    inventory: Inventory,
    amount: int,
    reviews: Reviews,
    *,
    discount_pct: int = 0,
    currency: str = "EUR",
) -> CatalogueEntry:
    price = Price(
        product_id=product.id, currency=currency, amount=amount, discount_pct=discount_pct
    )
    return CatalogueEntry(product=product, inventory=inventory, price=price, reviews=reviews)


_HAND_WRITTEN: tuple[CatalogueEntry, ...] = (
    _entry(
        Product(
            id="p-1001",
            name="Aurora ANC Wireless Headphones",
            description=(
                "The Aurora over-ear headphones pair adaptive active noise cancellation with "
                "40 mm beryllium-coated drivers for a wide, detailed soundstage. Eight "
                "microphones track the noise around you and retune the cancellation 200 times "
                "a second, so a train carriage, an open-plan office and a windy street all "
                "fade into the background. Memory-foam ear cushions wrapped in protein leather "
                "keep long listening sessions comfortable, and the headband folds flat into the "
                "included hard-shell case. Up to 38 hours of playback with noise cancellation "
                "on, a ten-minute quick charge for five more hours over USB-C, multipoint "
                "Bluetooth 5.3 to switch between laptop and phone, and a transparency mode that "
                "lets announcements through at the touch of a button."
            ),
            category="audio",
            images=_images("p-1001", "front", "side", "folded", "case", "lifestyle"),
            attributes={
                "brand": "Aurora",
                "color": "midnight blue",
                "weight_g": 254,
                "battery_hours": 38,
                "bluetooth": "5.3",
                "noise_cancelling": True,
            },
        ),
        _stock("p-1001", wh_berlin=42, wh_lyon=17, wh_milan=5),
        24_999,
        _reviews(
            "p-1001",
            4.6,
            1284,
            Review(
                author="Jonas K.",
                stars=5,
                text="Best noise cancelling I have tried on a long-haul flight.",
            ),
            Review(author="Amélie R.", stars=5, text="Comfortable for a whole working day."),
            Review(author="Priya S.", stars=4, text="Great sound, the case is a bit bulky."),
        ),
        discount_pct=15,
    ),
    _entry(
        Product(
            id="p-1002",
            name="Trailblazer 45 L Hiking Backpack",
            description=(
                "Built for multi-day treks, the Trailblazer 45 carries a full load close to your "
                "back on an adjustable aluminium frame with a ventilated mesh back panel that "
                "keeps air moving on steep climbs. The 210-denier ripstop nylon shell is coated "
                "against rain, and a stowable high-visibility rain cover lives in its own "
                "pocket in the base. Access the main compartment from the top, the front "
                "U-zip or the separate sleeping-bag zone; stretch side pockets take a litre "
                "bottle each, and the hip-belt pockets fit a phone and snacks. Includes a "
                "hydration sleeve for reservoirs up to 3 litres, trekking-pole loops, an "
                "emergency whistle on the sternum strap and reflective details for dusk."
            ),
            category="outdoor",
            images=_images(
                "p-1002", "front", "back-panel", "open", "rain-cover", "detail-hipbelt", "trail"
            ),
            attributes={
                "brand": "Trailblazer",
                "volume_l": 45,
                "weight_g": 1620,
                "color": "forest green",
                "material": "210D ripstop nylon",
                "hydration_compatible": True,
            },
        ),
        _stock("p-1002", wh_berlin=8, wh_lyon=0, wh_milan=3),
        17_900,
        _reviews(
            "p-1002",
            4.4,
            312,
            Review(author="Marta L.", stars=5, text="Carried it over the Alta Via 1, flawless."),
            Review(author="Tom H.", stars=4, text="Lots of pockets, frame takes some tuning."),
            Review(author="Sven A.", stars=4, text="The rain cover saved my gear twice."),
        ),
    ),
    _entry(
        Product(
            id="p-1003",
            name="Barista Pro Espresso Machine",
            description="Dual-boiler espresso machine with PID temperature control.",
            category="kitchen",
            images=_images("p-1003", "front", "portafilter", "steam-wand"),
            attributes={"brand": "Barista", "boilers": 2, "pressure_bar": 15, "color": "steel"},
        ),
        _stock("p-1003", wh_berlin=3, wh_milan=6),
        64_900,
        _reviews(
            "p-1003",
            4.8,
            96,
            Review(author="Luca B.", stars=5, text="Café-quality shots at home."),
            Review(author="Nina W.", stars=5, text="Heats up in five minutes."),
        ),
        discount_pct=10,
    ),
    _entry(
        Product(
            id="p-1004",
            name="Merino Crew Socks, 3-pack",
            description="Soft, odour-resistant merino wool socks for everyday wear.",
            category="apparel",
            images=_images("p-1004", "pack", "detail"),
            attributes={"brand": "Woolly", "size": "39-42", "merino_pct": 80},
        ),
        _stock("p-1004", wh_berlin=0, wh_lyon=0),
        2_495,
        _reviews(
            "p-1004",
            4.2,
            57,
            Review(author="Eva M.", stars=4, text="Warm and no itch."),
        ),
    ),
    _entry(
        Product(
            id="p-1005",
            name="Ceramic Pour-Over Dripper",
            description="Hand-glazed ceramic dripper with spiral ribs for an even extraction.",
            category="kitchen",
            images=_images("p-1005", "front", "top"),
            attributes={"brand": "Kiln & Co", "cups": 4, "color": "sand"},
        ),
        _stock("p-1005", wh_berlin=120, wh_lyon=64),
        2_900,
        _reviews(
            "p-1005",
            4.5,
            210,
            Review(author="Kenji T.", stars=5, text="Beautiful and brews a clean cup."),
            Review(author="Sara P.", stars=4, text="Needs a fine grind, then it is perfect."),
        ),
    ),
    _entry(
        Product(
            id="p-1006",
            name="Lumen Smart LED Desk Lamp",
            description="Dimmable desk lamp with adjustable colour temperature and USB-C charging.",
            category="home",
            images=_images("p-1006", "front", "desk"),
            attributes={"brand": "Lumen", "lumens": 800, "smart_home": True},
        ),
        _stock("p-1006", wh_lyon=14),
        7_990,
        # Just launched: nobody has reviewed it yet.
        _reviews("p-1006", 0.0, 0),
    ),
    _entry(
        Product(
            id="p-1007",
            name="Cast Iron Skillet 28 cm",
            description="Pre-seasoned cast iron skillet for searing, baking and campfire cooking.",
            category="kitchen",
            images=_images("p-1007", "top", "side"),
            attributes={"brand": "Forge", "diameter_cm": 28, "weight_g": 2700},
        ),
        _stock("p-1007", wh_berlin=25, wh_milan=11),
        4_450,
        _reviews(
            "p-1007",
            4.7,
            842,
            Review(author="Olga D.", stars=5, text="Will outlive me."),
            Review(author="Ben C.", stars=5, text="Perfect crust on steaks."),
            Review(author="Rui F.", stars=4, text="Heavy, as it should be."),
        ),
        discount_pct=20,
    ),
    _entry(
        Product(
            id="p-1008",
            name="Keystone TKL Mechanical Keyboard",
            description="Tenkeyless mechanical keyboard with hot-swappable tactile switches.",
            category="computing",
            images=_images("p-1008", "top", "angle", "switches"),
            attributes={"brand": "Keystone", "layout": "ISO-DE", "switch": "tactile brown"},
        ),
        _stock("p-1008", wh_berlin=9),
        12_900,
        _reviews(
            "p-1008",
            4.3,
            158,
            Review(author="Lena G.", stars=5, text="Typing feels great."),
            Review(author="Omar N.", stars=3, text="Software is Windows-only."),
        ),
    ),
    _entry(
        Product(
            id="p-1009",
            name="Grip Pro Yoga Mat 6 mm",
            description="Non-slip natural rubber yoga mat with alignment lines.",
            category="sports",
            images=_images("p-1009", "rolled", "flat"),
            attributes={"brand": "Grip", "thickness_mm": 6, "length_cm": 183},
        ),
        _stock("p-1009", wh_lyon=33, wh_milan=18),
        6_900,
        _reviews(
            "p-1009",
            4.1,
            403,
            Review(author="Chloé V.", stars=4, text="Grippy even in hot yoga."),
        ),
    ),
    _entry(
        Product(
            id="p-1010",
            name="Insulated Steel Bottle 750 ml",
            description="Double-walled bottle: cold for 24 hours, hot for 12.",
            category="outdoor",
            images=_images("p-1010", "front", "lid"),
            attributes={"brand": "Tundra", "volume_ml": 750, "color": "matte black"},
        ),
        _stock("p-1010", wh_berlin=210, wh_lyon=150, wh_milan=95),
        2_990,
        _reviews(
            "p-1010",
            4.6,
            2291,
            Review(author="Mia S.", stars=5, text="Ice still there the next morning."),
            Review(author="Paul R.", stars=4, text="Lid could seal better."),
        ),
        discount_pct=5,
    ),
    _entry(
        Product(
            id="p-1011",
            name="Vista 4K Action Camera",
            description="Waterproof 4K60 action camera with horizon levelling.",
            category="photo",
            images=_images("p-1011", "front", "mounted", "underwater"),
            attributes={"brand": "Vista", "resolution": "4K60", "waterproof_m": 10},
        ),
        # Nearly sold out: in stock, but only two left.
        _stock("p-1011", wh_milan=2),
        34_900,
        _reviews(
            "p-1011",
            3.9,
            77,
            Review(author="Diego A.", stars=4, text="Great stabilisation."),
            Review(author="Hanna J.", stars=3, text="Battery drains fast in the cold."),
        ),
    ),
    _entry(
        Product(
            id="p-1012",
            name="Washed Linen Duvet Cover Set",
            description="Stone-washed European linen duvet cover with two pillowcases.",
            category="home",
            images=_images("p-1012", "bed", "detail"),
            attributes={"brand": "Loom", "size": "200x200", "color": "oat"},
        ),
        _stock("p-1012", wh_lyon=21),
        15_900,
        _reviews(
            "p-1012",
            4.4,
            189,
            Review(author="Ines B.", stars=5, text="Gets softer with every wash."),
        ),
        discount_pct=25,
    ),
)


# --- the generated part of the catalogue ----------------------------------------------------


class _Kind(NamedTuple):
    """A kind of product within a category, from which products of that kind are made."""

    noun: str
    blurb: str
    euros: tuple[int, int]
    """The price range, in whole euros."""
    views: tuple[str, str, str]
    """Image names, the first ones used when a product has fewer than three images."""
    attributes: Mapping[str, tuple[AttributeValue, ...]]
    """Each attribute's possible values."""


class _Department(NamedTuple):
    """One category's vocabulary: who makes its products, what they are, what buyers say."""

    slug: str
    name: str
    brands: tuple[str, ...]
    colors: tuple[str, ...]
    kinds: tuple[_Kind, ...]
    praise: tuple[str, ...]
    gripes: tuple[str, ...]


_SIZES: Final = ("S", "M", "L", "XL")
_WATERPROOF: Final = ("IPX4", "IPX7")

_DEPARTMENTS: Final[tuple[_Department, ...]] = (
    _Department(
        "audio",
        "Audio",
        brands=("Aurora", "Sonora", "Halden", "Tessel", "Quell"),
        colors=("black", "white", "slate grey", "midnight blue", "sand"),
        kinds=(
            _Kind(
                "Wireless Earbuds",
                "True wireless earbuds with a pocket-sized charging case.",
                (49, 199),
                ("case", "buds", "in-ear"),
                {
                    "battery_hours": (6, 8, 10),
                    "bluetooth": ("5.2", "5.3"),
                    "waterproof": _WATERPROOF,
                },
            ),
            _Kind(
                "Bluetooth Speaker",
                "Portable speaker with a fabric shell and a carry strap.",
                (39, 249),
                ("front", "side", "outdoors"),
                {"battery_hours": (12, 16, 20, 24), "waterproof": _WATERPROOF},
            ),
            _Kind(
                "Over-Ear Headphones",
                "Closed-back headphones with plush ear cushions for long sessions.",
                (79, 349),
                ("front", "folded", "worn"),
                {
                    "battery_hours": (30, 40, 50),
                    "weight_g": (240, 265, 290),
                    "noise_cancelling": (True, False),
                },
            ),
            _Kind(
                "Soundbar",
                "Slim soundbar with a wireless subwoofer and HDMI eARC.",
                (149, 599),
                ("front", "remote", "living-room"),
                {"channels": ("2.1", "3.1", "5.1"), "power_w": (120, 200, 300)},
            ),
            _Kind(
                "Turntable",
                "Belt-driven turntable with a built-in phono preamp.",
                (129, 449),
                ("top", "tonearm", "shelf"),
                {"speeds": ("33/45", "33/45/78"), "usb_output": (True, False)},
            ),
            _Kind(
                "Studio Monitors",
                "A pair of active nearfield monitors with a flat, honest response.",
                (199, 699),
                ("pair", "rear", "desk"),
                {"woofer_in": (4, 5, 6), "power_w": (50, 80, 100)},
            ),
        ),
        praise=(
            "Clear, balanced sound.",
            "Bass is punchy without being boomy.",
            "Pairs instantly with my phone.",
            "Battery lasts all week.",
            "Excellent value for the sound.",
        ),
        gripes=(
            "The app is clunky.",
            "Connection drops now and then.",
            "Sounds fine, but a little thin.",
        ),
    ),
    _Department(
        "outdoor",
        "Outdoor",
        brands=("Trailblazer", "Tundra", "Northfold", "Ridgeline", "Cairn"),
        colors=("forest green", "ochre", "slate grey", "glacier blue", "black"),
        kinds=(
            _Kind(
                "Dome Tent",
                "Freestanding tent with two doors and two vestibules that pitches in minutes.",
                (129, 499),
                ("pitched", "packed", "interior"),
                {
                    "persons": (1, 2, 3, 4),
                    "weight_g": (1450, 1800, 2350, 2900),
                    "season": ("3-season", "4-season"),
                },
            ),
            _Kind(
                "Sleeping Bag",
                "Mummy sleeping bag with a draught collar and a two-way zip.",
                (89, 329),
                ("open", "packed", "hood"),
                {
                    "comfort_c": (-5, 0, 5),
                    "fill": ("down", "synthetic"),
                    "weight_g": (900, 1100, 1350),
                },
            ),
            _Kind(
                "Trekking Poles",
                "A pair of collapsible aluminium poles with cork grips.",
                (39, 139),
                ("pair", "grip", "folded"),
                {"length_cm": ("100-135", "105-140"), "weight_g": (460, 520)},
            ),
            _Kind(
                "Headlamp",
                "Rechargeable headlamp with a red night mode and a lock-out switch.",
                (24, 89),
                ("front", "side", "worn"),
                {"lumens": (300, 450, 600, 900), "waterproof": _WATERPROOF},
            ),
            _Kind(
                "Daypack",
                "Light daypack with a ventilated back panel and a hip belt.",
                (49, 129),
                ("front", "back-panel", "trail"),
                {
                    "volume_l": (18, 22, 26),
                    "weight_g": (650, 780),
                    "hydration_compatible": (True, False),
                },
            ),
            _Kind(
                "Camping Stove",
                "Compact gas stove that boils a litre of water in about four minutes.",
                (34, 119),
                ("assembled", "folded", "cooking"),
                {"output_w": (2600, 3000), "weight_g": (83, 110, 240)},
            ),
        ),
        praise=(
            "Survived a week of rain in Scotland.",
            "Light enough that I forget it is there.",
            "Well made, every seam is taped.",
            "Sets up in no time, even in the dark.",
            "Exactly what I needed for the Camino.",
        ),
        gripes=(
            "Heavier than the listing suggests.",
            "Zips feel flimsy.",
            "Fine for summer, not for the mountains.",
        ),
    ),
    _Department(
        "kitchen",
        "Kitchen",
        brands=("Barista", "Forge", "Kiln & Co", "Maison Vert", "Copperline"),
        colors=("steel", "matte black", "cream", "sage", "copper"),
        kinds=(
            _Kind(
                "Chef's Knife",
                "Forged stainless chef's knife with a full tang and a balanced handle.",
                (39, 189),
                ("side", "edge", "block"),
                {
                    "blade_cm": (18, 20, 24),
                    "steel": ("X50CrMoV15", "VG-10", "AUS-8"),
                    "hardness_hrc": (56, 58, 60),
                },
            ),
            _Kind(
                "Dutch Oven",
                "Enamelled cast iron pot for braises, stews and crusty bread.",
                (89, 329),
                ("side", "lid-off", "oven"),
                {"capacity_l": (3.8, 4.7, 5.3), "induction": (True,)},
            ),
            _Kind(
                "Burr Coffee Grinder",
                "Conical burr grinder with a wide range of grind settings.",
                (79, 299),
                ("front", "burrs", "counter"),
                {"settings": (30, 40, 60), "hopper_g": (250, 300)},
            ),
            _Kind(
                "Stand Mixer",
                "Planetary stand mixer with a steel bowl and three attachments.",
                (199, 599),
                ("side", "bowl", "attachments"),
                {"power_w": (800, 1000, 1200), "bowl_l": (4.5, 5.0, 5.5)},
            ),
            _Kind(
                "Electric Kettle",
                "Gooseneck kettle with precise temperature control and a keep-warm mode.",
                (39, 149),
                ("side", "base", "pouring"),
                {"capacity_l": (0.9, 1.0, 1.2), "power_w": (1200, 1500)},
            ),
            _Kind(
                "Cutting Board",
                "End-grain hardwood cutting board that is kind to knife edges.",
                (29, 119),
                ("top", "edge", "in-use"),
                {"wood": ("walnut", "oak", "maple"), "size_cm": ("40x30", "45x35")},
            ),
        ),
        praise=(
            "Feels like it will last a lifetime.",
            "Makes weeknight cooking a joy.",
            "Easy to clean.",
            "Looks great on the counter.",
            "Better than the one I had for twice the price.",
        ),
        gripes=(
            "Heavier than expected.",
            "The finish scratched quickly.",
            "Works, but the instructions are useless.",
        ),
    ),
    _Department(
        "apparel",
        "Apparel",
        brands=("Woolly", "Fjell", "Common Thread", "Vantage", "Ostra"),
        colors=("navy", "charcoal", "olive", "oat", "rust", "black"),
        kinds=(
            _Kind(
                "Merino Base Layer",
                "Long-sleeve merino top that regulates temperature and resists odour.",
                (49, 119),
                ("front", "back", "detail"),
                {"size": _SIZES, "merino_pct": (80, 100)},
            ),
            _Kind(
                "Rain Jacket",
                "Waterproof, breathable shell jacket with taped seams and an adjustable hood.",
                (99, 329),
                ("front", "hood", "packed"),
                {"size": _SIZES, "waterproof_mm": (10_000, 20_000), "weight_g": (290, 380)},
            ),
            _Kind(
                "Chino Trousers",
                "Organic cotton chinos with a touch of stretch.",
                (49, 109),
                ("front", "back", "detail"),
                {"waist_in": (30, 32, 34, 36), "fit": ("slim", "regular")},
            ),
            _Kind(
                "Fleece Pullover",
                "Recycled grid fleece with a half zip and a chest pocket.",
                (49, 129),
                ("front", "back", "collar"),
                {"size": _SIZES, "recycled_pct": (60, 100)},
            ),
            _Kind(
                "Leather Sneakers",
                "Minimal leather sneakers on a stitched rubber sole.",
                (89, 189),
                ("side", "pair", "sole"),
                {"size_eu": (39, 40, 41, 42, 43, 44, 45), "leather": ("full-grain", "suede")},
            ),
            _Kind(
                "Wool Beanie",
                "Ribbed wool beanie, warm without the bulk.",
                (19, 49),
                ("front", "folded", "worn"),
                {"material": ("merino", "lambswool")},
            ),
        ),
        praise=(
            "True to size.",
            "Soft, and still looks new after many washes.",
            "Warm without being bulky.",
            "Great fit, ordering a second one.",
            "The colour is even nicer in person.",
        ),
        gripes=(
            "Runs a size small.",
            "Pilled after a few weeks.",
            "Nice, but the sleeves are too long.",
        ),
    ),
    _Department(
        "home",
        "Home",
        brands=("Lumen", "Loom", "Hearth", "Nordvik", "Casa Alta"),
        colors=("oat", "charcoal", "terracotta", "white", "sage"),
        kinds=(
            _Kind(
                "Table Lamp",
                "Ceramic table lamp with a linen shade and a warm-dimming bulb.",
                (49, 199),
                ("front", "lit", "shade"),
                {"lumens": (400, 600, 800), "smart_home": (True, False)},
            ),
            _Kind(
                "Throw Blanket",
                "Chunky knit throw for the sofa, machine washable.",
                (39, 179),
                ("folded", "sofa", "detail"),
                {"size_cm": ("130x170", "150x200"), "material": ("cotton", "wool", "alpaca blend")},
            ),
            _Kind(
                "Scented Candle",
                "Hand-poured soy candle with a cotton wick in a reusable glass.",
                (14, 49),
                ("front", "lit", "lid"),
                {"burn_hours": (40, 50, 60), "scent": ("fig", "cedar", "sea salt", "amber")},
            ),
            _Kind(
                "Air Purifier",
                "Quiet HEPA air purifier with an automatic mode.",
                (129, 449),
                ("front", "filter", "room"),
                {"room_m2": (20, 40, 60), "noise_db": (24, 28, 32)},
            ),
            _Kind(
                "Bath Towel Set",
                "A set of long-staple cotton towels that get softer with every wash.",
                (39, 129),
                ("stack", "detail", "bathroom"),
                {"gsm": (500, 600, 700), "pieces": (4, 6)},
            ),
            _Kind(
                "Wall Clock",
                "Silent-sweep wall clock with a solid oak frame.",
                (29, 99),
                ("front", "side", "wall"),
                {"diameter_cm": (30, 35, 40)},
            ),
        ),
        praise=(
            "Makes the room feel finished.",
            "Beautiful quality, well packaged.",
            "Exactly as pictured.",
            "Washes well and keeps its shape.",
            "Quiet, and just works.",
        ),
        gripes=(
            "Smaller than I imagined.",
            "The colour is darker than in the photos.",
            "Took three weeks to arrive.",
        ),
    ),
    _Department(
        "computing",
        "Computing",
        brands=("Keystone", "Pixelgrid", "Arcline", "Corvid", "Helix"),
        colors=("space grey", "black", "silver", "white"),
        kinds=(
            _Kind(
                "Wireless Mouse",
                "Ergonomic wireless mouse with silent clicks and multi-device pairing.",
                (29, 129),
                ("top", "side", "desk"),
                {
                    "dpi": (2400, 4000, 8000),
                    "connectivity": ("bluetooth", "2.4 GHz", "bluetooth + 2.4 GHz"),
                },
            ),
            _Kind(
                "27-inch Monitor",
                "IPS monitor with factory colour calibration and USB-C power delivery.",
                (229, 699),
                ("front", "rear", "desk"),
                {"resolution": ("2560x1440", "3840x2160"), "refresh_hz": (60, 75, 144)},
            ),
            _Kind(
                "USB-C Dock",
                "Single-cable dock with two display outputs, Ethernet and pass-through charging.",
                (79, 299),
                ("top", "ports", "desk"),
                {"ports": (8, 11, 13), "power_delivery_w": (65, 100)},
            ),
            _Kind(
                "Portable SSD",
                "Pocket-sized NVMe SSD over USB-C, drop-resistant.",
                (69, 249),
                ("front", "cable", "hand"),
                {"capacity_gb": (500, 1000, 2000), "read_mb_s": (1050, 2000)},
            ),
            _Kind(
                "Laptop Stand",
                "Aluminium stand that lifts the screen to eye level.",
                (29, 89),
                ("side", "folded", "desk"),
                {"adjustable": (True, False), "max_screen_in": (16, 17)},
            ),
            _Kind(
                "Webcam",
                "Webcam with a privacy shutter and dual microphones.",
                (49, 199),
                ("front", "mounted", "shutter"),
                {"resolution": ("1080p", "4K"), "fps": (30, 60)},
            ),
            _Kind(
                "Mechanical Keyboard",
                "Compact mechanical keyboard with hot-swappable switches.",
                (79, 219),
                ("top", "angle", "switches"),
                {
                    "layout": ("ISO-DE", "ANSI-US", "ISO-UK"),
                    "switch": ("linear red", "tactile brown", "clicky blue"),
                },
            ),
        ),
        praise=(
            "Plug and play on Linux and macOS.",
            "Solid build, no flex at all.",
            "A big upgrade for my home office.",
            "Fast, and stays cool.",
            "Worth every cent.",
        ),
        gripes=(
            "Needed a firmware update out of the box.",
            "The cable is too short.",
            "Software is Windows-only.",
        ),
    ),
    _Department(
        "sports",
        "Sports",
        brands=("Grip", "Stride", "Apex", "Kinetic", "Velo"),
        colors=("black", "volt yellow", "coral", "navy", "grey"),
        kinds=(
            _Kind(
                "Running Shoes",
                "Cushioned road running shoes with a breathable mesh upper.",
                (89, 199),
                ("side", "sole", "pair"),
                {"size_eu": (38, 39, 40, 41, 42, 43, 44, 45, 46), "drop_mm": (4, 8, 10)},
            ),
            _Kind(
                "Adjustable Dumbbells",
                "A pair of dial-adjustable dumbbells that replace a rack of weights.",
                (149, 449),
                ("pair", "dial", "tray"),
                {"max_kg": (20, 24, 32)},
            ),
            _Kind(
                "Resistance Bands",
                "A set of latex resistance bands with handles and a door anchor.",
                (19, 49),
                ("set", "handles", "in-use"),
                {"pieces": (5, 11), "max_kg": (30, 50)},
            ),
            _Kind(
                "Foam Roller",
                "Textured foam roller for warm-ups and recovery.",
                (19, 59),
                ("side", "texture", "in-use"),
                {"length_cm": (33, 45, 90), "firmness": ("medium", "firm")},
            ),
            _Kind(
                "Cycling Helmet",
                "Road helmet with a rotational-impact liner and a magnetic buckle.",
                (59, 249),
                ("side", "top", "worn"),
                {"size": ("S", "M", "L"), "weight_g": (250, 290, 320)},
            ),
            _Kind(
                "Jump Rope",
                "Speed rope with ball-bearing handles and an adjustable steel cable.",
                (12, 39),
                ("coiled", "handles", "in-use"),
                {"length_m": (2.8, 3.0)},
            ),
        ),
        praise=(
            "Holds up to daily training.",
            "Comfortable from the first session.",
            "Great quality for the price.",
            "My physio recommended it, and she was right.",
            "Compact enough for a small flat.",
        ),
        gripes=(
            "Smells of rubber for the first week.",
            "Started to wear after two months.",
            "Fine, but nothing special.",
        ),
    ),
    _Department(
        "photo",
        "Photo",
        brands=("Vista", "Lumière", "Optik", "Halide", "Nordlys"),
        colors=("black", "silver", "graphite"),
        kinds=(
            _Kind(
                "Mirrorless Camera",
                "Mirrorless camera body with in-body stabilisation and weather sealing.",
                (799, 2499),
                ("front", "rear", "top"),
                {"sensor": ("APS-C", "full frame"), "megapixels": (24, 33, 45)},
            ),
            _Kind(
                "35 mm f/1.8 Lens",
                "Fast, compact prime lens, sharp wide open.",
                (199, 699),
                ("side", "front-element", "mounted"),
                {"mount": ("E", "Z", "RF", "X"), "weight_g": (280, 350, 420)},
            ),
            _Kind(
                "Travel Tripod",
                "Carbon fibre travel tripod with a ball head, folds to 40 cm.",
                (129, 399),
                ("extended", "folded", "head"),
                {"max_height_cm": (140, 150, 160), "load_kg": (8, 10, 12)},
            ),
            _Kind(
                "Camera Sling",
                "Weatherproof sling bag that holds a body and two lenses.",
                (49, 149),
                ("front", "open", "worn"),
                {"volume_l": (6, 10)},
            ),
            _Kind(
                "UHS-II SD Card",
                "V90 UHS-II memory card for high-bitrate video and long bursts.",
                (29, 199),
                ("front", "back", "reader"),
                {"capacity_gb": (64, 128, 256), "write_mb_s": (150, 260)},
            ),
            _Kind(
                "LED Light Panel",
                "Bi-colour LED panel with a built-in battery and app control.",
                (69, 249),
                ("front", "back", "set"),
                {"cri": (95, 96, 98), "kelvin": ("2700-6500", "3200-5600")},
            ),
        ),
        praise=(
            "Tack sharp.",
            "Light enough to take everywhere.",
            "Colours straight out of camera are lovely.",
            "Replaced a setup twice its size.",
            "Exactly what my travel kit was missing.",
        ),
        gripes=(
            "Battery life could be better.",
            "The menus take getting used to.",
            "A bit soft in the corners.",
        ),
    ),
)

_SERIES: Final = ("One", "Pro", "Air", "Go", "Max", "Studio", "Lite", "Edge", "Classic", "Flow")
_WAREHOUSES: Final = ("wh_berlin", "wh_lyon", "wh_milan")
_AUTHORS: Final = (
    "Anna K.",
    "Ben T.",
    "Carla M.",
    "David O.",
    "Elif Y.",
    "Finn L.",
    "Greta S.",
    "Hugo B.",
    "Ines R.",
    "Jakob W.",
    "Kaito N.",
    "Laura P.",
    "Mateo G.",
    "Nora H.",
    "Oskar D.",
    "Paula V.",
    "Quentin F.",
    "Rosa C.",
    "Samir A.",
    "Tilde J.",
    "Ugo E.",
    "Vera Z.",
    "Wiktor M.",
    "Yara Q.",
)
_CLOSERS: Final = (
    "",
    " Two-year warranty.",
    " Free returns within 30 days.",
    " Ships in recyclable packaging.",
    " Designed in Europe.",
)
# Weighted towards no discount: most of a catalogue sells at full price.
_DISCOUNTS: Final = (0, 0, 0, 0, 0, 0, 0, 5, 10, 15, 20, 25, 30)

_FIRST_GENERATED: Final = 1013
_GENERATED_PER_CATEGORY: Final = 36


def _generated_entry(product_id: str, department: _Department, index: int) -> CatalogueEntry:
    """Product number ``index`` of ``department``, made from its id alone."""
    # A str seed is hashed with SHA-512 by random.seed: the same in every process, unlike hash().
    rng = random.Random(f"demo-upstreams:{product_id}")
    # The kind and series come from the index, so no two products of a category share a name.
    kinds = department.kinds
    kind = kinds[index % len(kinds)]
    series = _SERIES[index // len(kinds) % len(_SERIES)]
    brand = rng.choice(department.brands)
    attributes: dict[str, AttributeValue] = {"brand": brand, "color": rng.choice(department.colors)}
    attributes.update((name, rng.choice(values)) for name, values in kind.attributes.items())
    product = Product(
        id=product_id,
        name=f"{brand} {series} {kind.noun}",
        description=kind.blurb + rng.choice(_CLOSERS),
        category=department.slug,
        images=_images(product_id, *kind.views[: rng.randint(1, 3)]),
        attributes=attributes,
    )

    if rng.random() < 0.05:  # sold out everywhere
        stock = dict.fromkeys(_WAREHOUSES, 0)
    else:
        held = sorted(rng.sample(range(len(_WAREHOUSES)), rng.randint(1, len(_WAREHOUSES))))
        stock = {_WAREHOUSES[i]: 0 if rng.random() < 0.1 else rng.randint(1, 150) for i in held}
    # Prices end in .99, .95, .90 or .00, as shops price them.
    amount = rng.randint(*kind.euros) * 100 - rng.choice((1, 1, 5, 10, 0))

    # Long-tailed, like real review counts: most products have some dozens, a few thousands.
    count = 0 if rng.random() < 0.05 else max(1, int(rng.lognormvariate(4.3, 1.1)))
    average = round(rng.uniform(3.3, 4.9), 1) if count else 0.0
    top: list[Review] = []
    # Shuffled copies, popped: no text appears twice under one product.
    praise = rng.sample(department.praise, len(department.praise))
    gripes = rng.sample(department.gripes, len(department.gripes))
    for author in rng.sample(_AUTHORS, min(count, rng.randint(1, 3))):
        stars = min(5, max(1, round(rng.gauss(average, 0.7))))
        text = (praise if stars >= 4 else gripes).pop()
        top.append(Review(author=author, stars=stars, text=text))
    if top and len(top) == count:  # every review is shown: the average must be theirs
        average = round(sum(review.stars for review in top) / count, 1)
    top.sort(key=lambda review: -review.stars)
    return _entry(
        product,
        _stock(product_id, **stock),
        amount,
        _reviews(product_id, average, count, *top),
        discount_pct=rng.choice(_DISCOUNTS),
    )


def _generated() -> Iterator[CatalogueEntry]:
    # Round-robin over the categories, so every range of ids mixes them as a real one would.
    number = _FIRST_GENERATED
    for index in range(_GENERATED_PER_CATEGORY):
        for department in _DEPARTMENTS:
            yield _generated_entry(f"p-{number}", department, index)
            number += 1


CATALOGUE: tuple[CatalogueEntry, ...] = _HAND_WRITTEN + tuple(_generated())
"""Every product: the twelve written by hand, then the generated ones, in id order."""

PRODUCT_IDS: tuple[str, ...] = tuple(entry.product.id for entry in CATALOGUE)
"""Every product id in the catalogue, in order."""

OUT_OF_STOCK_ID = "p-1004"
NO_REVIEWS_ID = "p-1006"
LONG_DESCRIPTION_IDS: tuple[str, ...] = ("p-1001", "p-1002")


# --- what the list services answer ----------------------------------------------------------

BEST_SELLERS: tuple[str, ...] = tuple(
    entry.product.id for entry in sorted(CATALOGUE, key=lambda e: (-e.reviews.count, e.product.id))
)
"""Every product id, most reviewed first (ties by id): the order of every product list here."""

CATEGORY_SLUGS: tuple[str, ...] = tuple(department.slug for department in _DEPARTMENTS)
"""The categories, in the order the category list answers them."""

_CATEGORY_OF: Final = {entry.product.id: entry.product.category for entry in CATALOGUE}

CATEGORIES: tuple[Category, ...] = tuple(
    Category(
        slug=department.slug,
        name=department.name,
        product_ids=tuple(pid for pid in BEST_SELLERS if _CATEGORY_OF[pid] == department.slug),
    )
    for department in _DEPARTMENTS
)
"""Each category with its products, best sellers first (by review count, ties by id)."""

ANONYMOUS_USER: Final = "anonymous"
"""The user whose recommendations are the catalogue's best sellers."""

RECOMMENDATION_COUNT: Final = 24
"""How many product ids every recommendations answer holds."""

# Of a signed-in user's recommendations, this many come from their two favourite categories.
_FROM_FAVOURITES: Final = 16


def recommendations_for(user: str) -> tuple[str, ...]:
    """The product ids recommended to ``user``: the same in every run, different per user.

    ``anonymous`` gets the best sellers. Anyone else gets two thirds from two categories the
    user's id picks (as if those were what they browse) and the rest from the other categories,
    mixed; the choice is seeded by a SHA-256 digest of the id, not by the per-process ``hash()``.
    """
    if user == ANONYMOUS_USER:
        return BEST_SELLERS[:RECOMMENDATION_COUNT]
    # surrogatepass: a path segment with invalid UTF-8 escapes may decode to lone surrogates.
    digest = hashlib.sha256(user.encode("utf-8", "surrogatepass")).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    favourites = rng.sample(CATEGORIES, 2)
    slugs = {category.slug for category in favourites}
    near = [pid for category in favourites for pid in category.product_ids]
    far = [pid for pid in PRODUCT_IDS if _CATEGORY_OF[pid] not in slugs]
    picked = rng.sample(near, _FROM_FAVOURITES) + rng.sample(
        far, RECOMMENDATION_COUNT - _FROM_FAVOURITES
    )
    rng.shuffle(picked)
    return tuple(picked)
