"""The harder simulator profile: what it claims about real sites is what its ground truth says."""

from __future__ import annotations

import re

from tools.dedupe.evaluation import CANONICAL, baselines, score
from tools.dedupe.fingerprint import page_fingerprint
from tools.dedupe.simulator import Site, World


def _shop(profile: str = "hard") -> Site:
    site = Site.generate(0, 3, "shop", profile)  # type: ignore[arg-type]
    assert site.kind == "shop"
    return site


def test_a_parameter_can_matter_only_for_some_values_or_paths() -> None:
    site = _shop()
    n = site.names
    category = site.categories[0]
    base = f"https://{site.host}/category/{category}"
    assert site.content_key(f"{base}?{n['view']}=grid") == site.content_key(base)  # layout only
    assert site.content_key(f"{base}?{n['view']}=all") != site.content_key(base)  # the whole category
    refinement = site.refinement
    assert refinement is not None
    search = f"https://{site.host}/search?{n['query']}=oak"
    assert site.content_key(f"{search}&{refinement}=sale") != site.content_key(search)  # a refinement here
    assert site.content_key(f"{base}?{refinement}=sale") == site.content_key(base)  # tracking there
    clean = _shop("clean")
    assert clean.refinement is None
    assert clean.content_key(f"https://{clean.host}/category/{clean.categories[0]}?{clean.names['view']}=all") == (
        clean.content_key(f"https://{clean.host}/category/{clean.categories[0]}")
    )


def test_soft_404s_answer_200_with_one_page_and_redirects_land_on_their_target() -> None:
    site = _shop()
    ident = site.names["identity"]
    missing = [f"https://{site.host}/product?{ident}={site.products + k}" for k in (1, 5)]
    assert site.content_key(missing[0]) == site.content_key(missing[1]) == ("soft404",)
    pages = [site.render(u, noise=7) for u in missing]  # the same request noise: only the page differs
    assert all(p.status == 200 for p in pages)
    a, b = (page_fingerprint(p) for p in pages)
    assert a.same(b)  # one "not found" page, whatever the id
    assert site.content_key(f"https://{site.host}/item/12") == site.content_key(
        f"https://{site.host}/product?{ident}=12"
    )
    assert _shop("clean").content_key(f"https://{site.host}/item/12") == ("404",)


def test_listing_canonicals_lie_in_the_hard_profile_only() -> None:
    for profile, lies in (("hard", True), ("clean", False)):
        site = _shop(profile)
        page_two = f"https://{site.host}/category/{site.categories[0]}?{site.names['page']}=2"
        page_one = f"https://{site.host}/category/{site.categories[0]}"
        tag = re.compile(r'rel="canonical" href="([^"]+)"')
        canon = [tag.search(site.render(u).html).group(1) for u in (page_two, page_one)]  # type: ignore[union-attr]
        assert (canon[0] == canon[1]) is lies  # two different pages, one canonical: a lie
        assert site.content_key(page_two) != site.content_key(page_one)


def test_render_noise_varies_in_size_in_the_hard_profile() -> None:
    site = _shop()
    url = f"https://{site.host}/product?{site.names['identity']}=3"
    sizes = {len(site.render(url).html) for _ in range(30)}
    assert max(sizes) - min(sizes) > 300  # a recommendation block from nothing to 120 words
    clean = _shop("clean")
    clean_sizes = {len(clean.render(url.replace(site.host, clean.host)).html) for _ in range(30)}
    assert max(clean_sizes) - min(clean_sizes) < 40  # a footer line only


def test_rare_patterns_are_rare_and_the_canonical_baseline_is_fooled_by_lies() -> None:
    world = World.generate(5, 9, "hard")
    shop = world.sites[0]
    log = shop.urls(3000, 1)
    gift = [u for u in log if "/gift-card" in u]
    assert 0 < len(gift) < 0.03 * len(log)
    methods = baselines(world)
    test = shop.urls(600, 2, valid_only=True)
    canonical = score(CANONICAL, test, [methods[CANONICAL](u) for u in test], shop, world)
    assert canonical.precision < 0.5  # pages 2, 3, … and filtered listings merged into page 1
    clean = World.generate(5, 9, "clean")
    clean_shop = clean.sites[0]
    clean_test = clean_shop.urls(600, 2, valid_only=True)
    truthful = score(CANONICAL, clean_test, [baselines(clean)[CANONICAL](u) for u in clean_test], clean_shop, clean)
    assert truthful.precision == 1.0 and truthful.recall == 1.0


def test_a_run_is_reproducible_from_its_seed_whatever_the_process_rendered_before() -> None:
    """Render noise comes from each site's own counter: learning the same site of a fresh world with
    the same seed gives the same map, even after other worlds were rendered in between."""
    import asyncio

    from tools.dedupe.evaluation import DomainRun, _learn
    from tools.dedupe.model import LearnSettings

    def learn() -> dict[str, object]:
        world = World.generate(5, 9, "hard")
        site = world.sites[0]
        run = DomainRun(site, site.urls(800, 1), [])
        learned = asyncio.run(_learn(run, LearnSettings(max_samples=5, top_patterns=10), world))
        return learned.model_dump(exclude={"created_at"})

    first = learn()
    noise = World.generate(3, 1, "hard").sites[0]
    for n in range(50):
        noise.render(f"https://{noise.host}/product?{noise.names['identity']}={n + 1}")
    assert learn() == first
