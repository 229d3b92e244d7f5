"""A site simulator: domains whose parameters have known meanings, for learning and evaluation.

No public labelled duplicate-URL set exists, so the generator *is* the ground truth. Each site has
templates (product pages, listings, search, articles, threads) whose parameters play a role:

- identity (`id`, `sku`, `t`, `q`, …): which page — removing it changes everything;
- filter, pagination, sort: change the listing; pagination and sort have default values;
- presentation (`view`): the same items laid out differently — the same content;
- tracking, session, cache-busters: never change the content; some use names no prior knows;
- path aliases (`/p/12` for `/product/12`): the same page at another path.

The server side parses a URL the way a tolerant web server does and derives the content key; two
URLs are duplicates exactly when their keys are equal. Pages render with per-request noise
(timestamps, a rotating ad slot), so exact hashes fail and near-duplicate fingerprints work.

Two profiles. `clean` (the original): each parameter always changes the page or never does, and
renders differ only by a footer line. `hard` keeps all of that and adds what real sites do:

- parameters that matter only on some paths or values: `view=all` puts a whole category on one
  page (other `view` values only re-lay it out), and the site's first custom tracking name is a
  real refinement on `/search` while it is tracking everywhere else;
- per-request noise of varying size: a recommendation block of 0–120 words, timestamps and ads;
- soft-404s (an unknown product or thread answers 200 with one "not found" page) and redirects
  (`/item/12` answers with the product page the redirect leads to);
- canonical tags that lie: a listing's `rel=canonical` names the category's first page whatever
  its page, filter or sort (products' canonicals are right);
- rare patterns with few samples (`/gift-card?amount=…`, about 1% of a shop's log).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from tools.dedupe.fingerprint import Page

Role = Literal["identity", "filter", "page", "sort", "presentation", "tracking", "session", "cachebuster"]
Profile = Literal["clean", "hard"]
ContentKey = tuple[str, ...]

_WORDS = (  # noqa: SIM905 - a word list reads best as prose
    "alpine amber anchor arbor aspen atlas aurora autumn azure balsam basalt beacon birch bloom bluff bramble breeze "
    "brook canyon cedar chalk cinder citrus clover cobalt comet coral cove crest crystal cypress dahlia delta dune "
    "ember fable falcon fern fjord flint forge frost garnet glacier grove harbor hazel heron hollow indigo iris ivory "
    "jade jasper juniper kestrel lagoon larch lark laurel lichen linen lotus lumen maple marble meadow mesa mica "
    "mist moss nectar nimbus oak oasis obsidian olive onyx opal orchid osprey pebble pine plume poplar prairie quartz "
    "quill raven reed ridge river robin rowan saffron sage sierra slate sparrow spruce stone summit sycamore tansy "
    "thistle thorn tide timber topaz tundra umber valley velvet vine violet willow wren yarrow zephyr"
).split()
_COLORS = ["red", "blue", "green", "black", "white", "grey", "navy", "beige"]
_SORTS = ["relevance", "price_asc", "price_desc", "newest", "rating"]

IDENTITY_NAMES = ["id", "pid", "sku", "item", "product_id", "p", "itemid"]
QUERY_NAMES = ["q", "query", "search", "keywords"]
PAGE_NAMES = ["page", "pg", "p_num", "pagenum"]
SORT_NAMES = ["sort", "order", "sortby", "orderby"]
FILTER_NAMES = ["color", "colour", "brand", "size"]
VIEW_NAMES = ["view", "layout", "display"]
# Tracking and session names no prior list knows: only learning finds them.
CUSTOM_TRACKING = ["ref", "src", "from", "campaign", "cmp", "affid", "partner", "origin", "via"]
KNOWN_TRACKING = ["utm_source", "utm_medium", "utm_campaign", "gclid", "fbclid", "msclkid"]
SESSION_NAMES = ["sid", "s", "sessid", "token", "visitor"]
CACHEBUSTER_NAMES = ["_", "cb", "ts", "rnd", "nocache", "t0"]


def _stable(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class Site:
    """One simulated domain: its parameter names, inventory and URL habits."""

    host: str  # may carry a port when served over HTTP (`127.0.0.1:8123`)
    kind: Literal["shop", "news", "forum", "shopify", "sfcc"]
    seed: int
    scheme: str = "https"
    names: dict[str, str] = field(default_factory=dict)  # role slot → parameter name on this site
    categories: list[str] = field(default_factory=list)
    products: int = 400
    per_page: int = 12
    neutral: list[tuple[str, Role]] = field(default_factory=list)
    profile: Profile = "clean"
    _renders: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _inventory: dict[tuple[str, str, str], list[tuple[str, int, str, int]]] = field(default_factory=dict, repr=False)
    _pages: dict[ContentKey, str] = field(default_factory=dict, repr=False)

    # -- generation -------------------------------------------------------------------------

    @property
    def hard(self) -> bool:
        return self.profile == "hard"

    @property
    def refinement(self) -> str | None:
        """Hard profile: the custom tracking name that refines results on `/search` (tracking elsewhere)."""
        custom = [n for n, role in self.neutral if role == "tracking" and n in CUSTOM_TRACKING]
        return custom[0] if self.hard and custom else None

    @classmethod
    def generate(cls, index: int, seed: int, kind: str | None = None, profile: Profile = "clean") -> Site:
        rng = random.Random(_stable("site", seed, index))
        kind = kind or rng.choice(["shop", "shop", "news", "forum", "shopify", "sfcc"])
        word = rng.choice(_WORDS)
        host = {
            "shopify": f"{word}-{index}.myshopify.com",
            "sfcc": f"www.{word}{index}-store.com",
        }.get(kind, f"www.{word}{index}.{rng.choice(['com', 'net', 'org', 'io'])}")
        site = cls(host=host, kind=kind, seed=_stable("seed", seed, index), profile=profile)  # type: ignore[arg-type]
        site.names = {
            "identity": rng.choice(IDENTITY_NAMES),
            "query": rng.choice(QUERY_NAMES),
            "page": rng.choice(PAGE_NAMES),
            "sort": rng.choice(SORT_NAMES),
            "filter": rng.choice(FILTER_NAMES),
            "view": rng.choice(VIEW_NAMES),
            "thread": rng.choice(["t", "thread", "topic"]),
        }
        site.categories = rng.sample(_WORDS, 8)
        site.products = rng.choice([200, 400, 800])
        site.per_page = rng.choice([10, 12, 20])
        tracking = rng.sample(CUSTOM_TRACKING, 2) + rng.sample(KNOWN_TRACKING, 2)
        site.neutral = [(name, "tracking") for name in tracking]
        site.neutral += [(rng.choice(SESSION_NAMES), "session"), (rng.choice(CACHEBUSTER_NAMES), "cachebuster")]
        taken = set(site.names.values())
        site.neutral = [(n, r) for n, r in site.neutral if n not in taken]
        return site

    def urls(self, count: int, seed: int, valid_only: bool = False) -> list[str]:
        """A log of `count` URLs; `valid_only` skips the ones that 404 (test sets: every 404 is alike)."""
        rng = random.Random(_stable("urls", self.seed, seed))
        out: list[str] = []
        while len(out) < count:
            url = self._url(rng)
            if not valid_only or self.content_key(url)[0] != "404":
                out.append(url)
        return out

    def _url(self, rng: random.Random) -> str:
        path, params = self._request(rng)
        for name, role in self.neutral:
            if rng.random() < (0.25 if role == "tracking" else 0.15):
                params.append((name, self._neutral_value(role, rng)))
        rng.shuffle(params)
        host = self.host.upper() if rng.random() < 0.03 else self.host
        port = ":443" if self.scheme == "https" and ":" not in self.host and rng.random() < 0.02 else ""
        url = f"{self.scheme}://{host}{port}{path}"
        if params:
            url += "?" + "&".join(f"{quote(n, safe='_')}={quote(v, safe='')}" for n, v in params)
        if rng.random() < 0.05:
            url += "#" + rng.choice(["reviews", "top", "details"])
        return url

    def _neutral_value(self, role: Role, rng: random.Random) -> str:
        if role == "tracking":
            return rng.choice(["newsletter", "twitter", "spring_sale", "partner42", "feed", "email"]) + str(
                rng.randint(0, 30)
            )
        if role == "session":
            return f"{rng.getrandbits(48):012x}"
        return str(1_790_000_000 + rng.randint(0, 10_000_000))

    def _request(self, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
        n = self.names
        roll = rng.random()
        if self.kind in ("shop", "shopify", "sfcc") and roll < 0.45:
            return self._product(rng)
        if self.kind in ("shop", "shopify", "sfcc") and roll < 0.85:
            return self._listing(rng)
        if self.kind in ("shop", "shopify", "sfcc"):
            if self.hard and self.kind == "shop" and roll > 0.99:  # a rare pattern: few samples in any log
                params = [("amount", str(rng.choice([10, 25, 50, 100])))]
                return "/gift-card", params
            params = [(n["query"], rng.choice(_WORDS))]
            self._paging(rng, params, sort=rng.random() < 0.3)
            if self.refinement and rng.random() < 0.35:
                params.append((self.refinement, rng.choice(["instock", "sale", "new"])))
            return "/search", params
        if self.kind == "news":
            if roll < 0.6:
                article = rng.randint(1, self.products)
                if rng.random() < 0.15:
                    return f"/a/{article}", []  # a path alias of the article
                params = [(n["identity"], str(article))]
                if rng.random() < 0.2:
                    params.append((n["view"], rng.choice(["print", "amp", "full"])))
                return "/article", params
            params = []
            self._paging(rng, params, sort=False)
            return f"/section/{rng.choice(self.categories)}", params
        # forum
        thread = rng.randint(1, self.products + (self.products // 20 if self.hard else 0))
        params = [(n["thread"], str(thread))]
        if rng.random() < 0.5:
            params.append((n["page"], str(rng.choice([1, 1, 2, 3, 4]))))
        if rng.random() < 0.2:
            params.append(("highlight", rng.choice(_WORDS)))
        return "/viewtopic", params

    def _product(self, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
        # Hard: about 5% of product links name a product that does not exist (a soft-404 page).
        product = rng.randint(1, self.products + (self.products // 20 if self.hard else 0))
        if self.kind == "shopify":
            params: list[tuple[str, str]] = []
            if rng.random() < 0.5:
                params.append(("variant", str(4_000_000 + product * 10 + rng.randint(0, 3))))
            return f"/products/{self._handle(product)}", params
        if self.kind == "sfcc":
            return "/on/demandware.store/Sites-Main-Site/en_US/Product-Show", [("pid", str(10_000 + product))]
        params = [(self.names["identity"], str(product))]
        if rng.random() < 0.25:
            params.append((self.names["view"], rng.choice(["grid", "list", "full"])))
        if rng.random() < 0.1:
            return f"/p/{product}", []  # path alias
        if self.hard and rng.random() < 0.06:
            return f"/item/{product}", []  # an old path that redirects to the product
        return "/product", params

    def _listing(self, rng: random.Random) -> tuple[str, list[tuple[str, str]]]:
        category = rng.choice(self.categories)
        params: list[tuple[str, str]] = []
        if self.kind == "sfcc":
            params.append(("cgid", category))
            if rng.random() < 0.4:
                params += [("prefn1", "color"), ("prefv1", rng.choice(_COLORS))]
            if rng.random() < 0.5:
                params += [("start", str(self.per_page * rng.choice([0, 0, 1, 2]))), ("sz", str(self.per_page))]
            return "/on/demandware.store/Sites-Main-Site/en_US/Search-Show", params
        if self.kind == "shopify":
            if rng.random() < 0.5:
                params.append(("page", str(rng.choice([1, 1, 2, 3]))))
            if rng.random() < 0.3:
                params.append(("sort_by", rng.choice(["best-selling", "price-ascending", "created-descending"])))
            return f"/collections/{category}", params
        if rng.random() < 0.4:
            params.append((self.names["filter"], rng.choice(_COLORS)))
        self._paging(rng, params, sort=rng.random() < 0.5)
        if rng.random() < 0.25:
            params.append((self.names["view"], rng.choice(["grid", "list", "all"] if self.hard else ["grid", "list"])))
        return f"/category/{category}", params

    def _paging(self, rng: random.Random, params: list[tuple[str, str]], sort: bool) -> None:
        if rng.random() < 0.6:
            params.append((self.names["page"], str(rng.choice([1, 1, 1, 2, 3, 4, 5]))))
        if sort:
            params.append((self.names["sort"], rng.choice(["relevance", "relevance", *_SORTS[1:]])))

    def _boilerplate(self) -> str:
        rng = random.Random(_stable(self.seed, "footer"))
        return "<footer>" + " ".join(rng.choice(_WORDS) for _ in range(100)) + "</footer>"

    def _handle(self, product: int) -> str:
        return f"{_WORDS[_stable(self.seed, product) % len(_WORDS)]}-{product}"

    # -- the server side --------------------------------------------------------------------

    def content_key(self, url: str) -> ContentKey:
        """What page `url` shows, as a tolerant server parses it: the ground truth."""
        parts = urlsplit(url.strip())
        path = "/" + "/".join(s for s in unquote(parts.path).split("/") if s and s != ".")
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        n = self.names
        if self.kind == "shopify":
            if path.startswith("/products/"):
                handle = path.removeprefix("/products/")
                product = handle.rpartition("-")[2]
                variant = one("variant")
                if not product.isdigit() or handle != self._handle(int(product)):
                    return ("404",)
                if variant and variant.isdigit() and int(variant) // 10 == 400_000 + int(product):
                    return ("product", product, "variant", variant)
                return ("product", product)
            if path.startswith("/collections/"):
                return self._listing_key(
                    path.removeprefix("/collections/"), query, "page", "sort_by", None, "best-selling"
                )
            return self._search_or_404(path, query)
        if self.kind == "sfcc":
            if path.endswith("/Product-Show"):
                pid = one("pid")
                return ("product", str(int(pid) - 10_000)) if pid and pid.isdigit() else ("404",)
            if path.endswith("/Search-Show"):
                category = one("cgid")
                if category is None:
                    return ("404",)
                start = one("start") or "0"
                size = one("sz") or str(self.per_page)
                if not (start.isdigit() and size.isdigit()) or int(size) == 0:
                    return ("404",)
                page = str(int(start) // int(size) + 1)
                color = one("prefv1") if one("prefn1") == "color" else None
                return self._listing_content(category, color, "relevance", page)
            return self._search_or_404(path, query)
        if self.kind == "forum":
            if path != "/viewtopic":
                return ("404",)
            thread = one(n["thread"])
            page = one(n["page"]) or "1"
            if thread is None or not thread.isdigit() or not page.isdigit():
                return ("404",)
            if self.hard and int(thread) > self.products:
                return ("soft404",)
            return ("thread", thread, "page", page)
        if self.kind == "news":
            if path.startswith("/a/"):
                article = path.removeprefix("/a/")
                return ("article", article) if article.isdigit() else ("404",)
            if path == "/article":
                article_id = one(n["identity"])
                return ("article", article_id) if article_id and article_id.isdigit() else ("404",)
            if path.startswith("/section/"):
                return self._listing_key(path.removeprefix("/section/"), query, n["page"], None, None, "relevance")
            return ("404",)
        # shop
        if path.startswith("/p/"):
            product = path.removeprefix("/p/")
            return ("product", product) if product.isdigit() else ("404",)
        if path == "/product" or (self.hard and path.startswith("/item/")):
            product_id = one(n["identity"]) if path == "/product" else path.removeprefix("/item/")
            if product_id is None or not product_id.isdigit():
                return ("404",)
            if int(product_id) > self.products:
                return ("soft404",) if self.hard else ("404",)
            return ("product", product_id)
        if self.hard and path == "/gift-card":
            amount = one("amount")
            return ("gift-card", amount) if amount and amount.isdigit() else ("404",)
        if path.startswith("/category/"):
            key = self._listing_key(
                path.removeprefix("/category/"), query, n["page"], n["sort"], n["filter"], "relevance"
            )
            if self.hard and key[0] == "listing" and one(n["view"]) == "all":
                return (*key[:-1], "all")  # every item of the category on one page
            return key
        return self._search_or_404(path, query)

    def _search_or_404(self, path: str, query: dict[str, list[str]]) -> ContentKey:
        if path != "/search":
            return ("404",)
        terms = query.get(self.names["query"], [""])[0]
        if not terms:
            return ("search-empty",)
        refined = (query.get(self.refinement) or [""])[0] if self.refinement else ""
        category = "search:" + terms + (f"|{refined}" if refined else "")
        return self._listing_key(category, query, self.names["page"], self.names["sort"], None, "relevance")

    def _listing_key(
        self,
        category: str,
        query: dict[str, list[str]],
        page_name: str,
        sort_name: str | None,
        filter_name: str | None,
        default_sort: str,
    ) -> ContentKey:
        page = (query.get(page_name) or ["1"])[0] or "1"
        sort = (query.get(sort_name) or [default_sort])[0] if sort_name else default_sort
        colors = query.get(filter_name) if filter_name else None
        color = colors[0] if colors else None
        if not page.isdigit() or int(page) < 1:
            return ("404",)
        return self._listing_content(category, color, sort or default_sort, str(int(page)))

    def _listing_content(self, category: str, color: str | None, sort: str, page: str) -> ContentKey:
        if not category.startswith("search:") and category not in self.categories:
            return ("404",)
        if page == "all":
            return ("listing", category, "color", color or "*", "sort", sort, "page", page)
        if (int(page) - 1) * self.per_page >= len(self._items(category, color or "*", "relevance")):
            return ("404",)  # past the last page
        return ("listing", category, "color", color or "*", "sort", sort, "page", page)

    def render(self, url: str, noise: int = 0) -> Page:
        """The page at `url`, with request-dependent noise: `noise` picks it, or (0) this site's
        render counter does — per site, so a run's results depend on its seed, not on what the same
        process rendered before."""
        tick = noise or next(self._renders)
        key = self.content_key(url)
        if key[0] == "404":
            return Page(url, 404, f"<html><head><title>Not found</title></head><body><h1>{self.host}</h1>"
                                  f"<p>Nothing here.</p>{_noise(tick)}</body></html>")  # fmt: skip
        html = self._pages.get(key)
        if html is None:
            html = self._pages[key] = self._page_html(key)
        extra = _noise(tick) + (_recommendations(tick) if self.hard else "")
        return Page(url, 200, html.replace("</body>", extra + "</body>"))

    def canonical(self, key: ContentKey) -> str:
        """The page's `rel=canonical`: right for every page of the clean profile; in the hard one a
        listing's names the category's first page, whatever its page, filter or sort."""
        if self.hard and key[0] == "listing":
            key = ("listing", key[1], "color", "*", "sort", "relevance", "page", "1")
        return f"{self.scheme}://{self.host}/canonical/" + "/".join(quote(part, safe="") for part in key)

    def _page_html(self, key: ContentKey) -> str:
        if key[0] == "soft404":
            return (
                f"<html><head><title>{self.host}</title></head><body><nav>{' '.join(self.categories)}</nav>"
                "<h1>Sorry, we could not find that</h1><p>Try searching instead.</p>"
                f"{self._boilerplate()}</body></html>"
            )
        if key[0] == "listing":
            body = self._listing_html(key)
        else:
            rng = random.Random(_stable(self.seed, *key))
            words = " ".join(rng.choice(_WORDS) for _ in range(400))
            title = " ".join(rng.choice(_WORDS) for _ in range(4)).title()
            body = f"<h1>{title}</h1><p>{words}</p>"
        return (
            f"<html><head><title>{self.host} {key[0]}</title>"
            f'<meta property="og:title" content="{" ".join(key)}">'
            f'<link rel="canonical" href="{self.canonical(key)}"></head>'
            f"<body><nav>{' '.join(self.categories)}</nav>{body}{self._boilerplate()}</body></html>"
        )

    def _items(self, category: str, color: str, sort: str) -> list[tuple[str, int, str, int]]:
        key = (category, color, sort)
        cached = self._inventory.get(key)
        if cached is None:
            cached = self._inventory[key] = self._make_items(category, color, sort)
        return cached

    def _make_items(self, category: str, color: str, sort: str) -> list[tuple[str, int, str, int]]:
        rng = random.Random(_stable(self.seed, "inventory", category))
        items = [
            (" ".join(rng.choice(_WORDS) for _ in range(30)), rng.randint(5, 500), rng.choice(_COLORS), i)
            for i in range(360)
        ]
        if color != "*":
            items = [item for item in items if item[2] == color]
        order = {
            "price_asc": lambda it: (it[1], it[3]),
            "price-ascending": lambda it: (it[1], it[3]),
            "price_desc": lambda it: (-it[1], it[3]),
            "newest": lambda it: (-it[3],),
            "created-descending": lambda it: (-it[3],),
            "rating": lambda it: (_stable(it[0]) % 97, it[3]),
        }.get(sort)
        if order is not None:
            items.sort(key=order)
        return items

    def _listing_html(self, key: ContentKey) -> str:
        _, category, _, color, _, sort, _, page = key
        items = self._items(category, color, sort)
        if page == "all":
            shown = items
        else:
            start = (int(page) - 1) * self.per_page
            shown = items[start : start + self.per_page]
        lines = "".join(f"<li>{name} — {price} dollars — {c}</li>" for name, price, c, _ in shown)
        rng = random.Random(_stable(self.seed, "intro", category, color))
        intro = " ".join(rng.choice(_WORDS) for _ in range(150))
        return f"<h1>{category}</h1><p>{intro}</p><ul>{lines}</ul>"


def asgi_app(site: Site) -> Any:
    """Serve `site` over HTTP (for learning through a real fetcher): any Host, the site's pages."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        page = site.render(f"{site.scheme}://{site.host}{target}" + (f"?{query}" if query else ""))
        body = page.html.encode()
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": page.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _recommendations(tick: int) -> str:
    """Hard profile: a recommendation block that changes per request, from nothing to 120 words."""
    rng = random.Random(_stable("recs", tick))
    words = " ".join(rng.choice(_WORDS) for _ in range(rng.choice([0, 0, 10, 30, 60, 120])))
    return f"<aside>recommended for you {words}</aside>" if words else ""


def _noise(tick: int) -> str:
    """A timestamp and a rotating ad slot: different on every render, small against the content."""
    ad = _WORDS[_stable("ad", tick) % len(_WORDS)]
    return f"<footer>rendered {1_790_000_000 + tick} sponsored {ad}</footer>"


@dataclass(slots=True)
class World:
    """Many sites; routes a URL to its site by host."""

    sites: list[Site]
    _by_host: dict[str, Site] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, count: int, seed: int, profile: Profile = "clean") -> World:
        kinds = ["shop", "news", "forum", "shopify", "sfcc"]
        return cls([Site.generate(i, seed, kinds[i % len(kinds)], profile) for i in range(count)])

    def site(self, url: str) -> Site | None:
        host = (urlsplit(url).hostname or "").lower()
        if len(self._by_host) != len(self.sites):
            self._by_host = {s.host: s for s in self.sites}
        return self._by_host.get(host)

    def content_key(self, url: str) -> ContentKey:
        site = self.site(url)
        return ("404",) if site is None else (site.host, *site.content_key(url))

    def identity(self, url: str) -> ContentKey:
        """The identity part of a URL's content (which product/article/thread/listing)."""
        key = self.content_key(url)
        return key[:3] if len(key) > 2 and key[1] in ("product", "article", "thread", "listing") else key

    def render(self, url: str) -> Page:
        site = self.site(url)
        if site is None:
            return Page(url, 404, "<html><body>unknown host</body></html>")
        return site.render(url)

    def urls(self, per_site: int, seed: int) -> Iterator[tuple[Site, list[str]]]:
        for site in self.sites:
            yield site, site.urls(per_site, seed)
