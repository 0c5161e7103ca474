"""The simulated catalogue: what the four demo services know about.

Twelve products, ``p-1001`` to ``p-1012``. A few are deliberately unusual so the BFFs' edge
cases are reachable without fault injection:

* ``p-1001`` and ``p-1002`` have long descriptions and five or six images, so a trimmed mobile
  payload is visibly smaller than the full web one;
* ``p-1004`` is out of stock (every warehouse at zero);
* ``p-1006`` has no reviews yet.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CATALOGUE",
    "LONG_DESCRIPTION_IDS",
    "NO_REVIEWS_ID",
    "OUT_OF_STOCK_ID",
    "PRODUCT_IDS",
    "CatalogueEntry",
    "Inventory",
    "Price",
    "Product",
    "Review",
    "Reviews",
    "Warehouse",
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
    """What the reviews service answers for one id."""

    product_id: str
    average: float
    count: int
    top: tuple[Review, ...]


class CatalogueEntry(msgspec.Struct, frozen=True):
    """Everything the four services know about one product."""

    product: Product
    inventory: Inventory
    price: Price
    reviews: Reviews


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


CATALOGUE: tuple[CatalogueEntry, ...] = (
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

PRODUCT_IDS: tuple[str, ...] = tuple(entry.product.id for entry in CATALOGUE)
"""Every product id in the catalogue, in order."""

OUT_OF_STOCK_ID = "p-1004"
NO_REVIEWS_ID = "p-1006"
LONG_DESCRIPTION_IDS: tuple[str, ...] = ("p-1001", "p-1002")
