"""URL policy: what model-chosen URLs may reach, in every spelling, checked at connect time."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from vdr_cli.net.errors import BlockedUrl
from vdr_cli.net.fetch import fetch
from vdr_cli.net.policy import GuardedTransport, UrlPolicy, classify, parse_ipv4
from web import web  # noqa: F401  (the loopback web fixture)

AGENT = UrlPolicy(mode="agent")
USER = UrlPolicy(mode="user")


@pytest.mark.parametrize(
    "host, expected",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("127.0.0.1.", "127.0.0.1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("0x.1.example", None),
    ],
)
def test_parse_ipv4_spellings(host: str, expected: str | None) -> None:
    got = parse_ipv4(host)
    assert (str(got) if got else None) == expected


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://0x7f.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:7f00:1]/", "loopback"),
        ("http://[::127.0.0.1]/", "loopback"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 of 10.0.0.1
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1:8080/admin", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://localhost:8080/", "loopback"),
        ("http://foo.localhost/", "loopback"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com@127.0.0.1/", "credentials"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/", "only http and https"),
        ("gopher://127.0.0.1:70/", "only http and https"),
    ],
)
def test_agent_mode_blocks(url: str, reason: str) -> None:
    with pytest.raises(BlockedUrl) as info:
        AGENT.check(url)
    message = str(info.value)
    assert reason in message
    assert "\n" not in message and url[:20] in message  # one line, naming the URL


@pytest.mark.parametrize("url", ["https://example.com/a?b=c#frag", "http://93.184.216.34/", "http://[2606:2800:220:1::1]/", "http://bücher.example/"])
def test_agent_mode_allows_public(url: str) -> None:
    assert AGENT.check(url).startswith("http")


def test_numeric_spellings_are_normalised_for_fetching() -> None:
    assert USER.check("http://0x7f.1:8080/x#y") == "http://127.0.0.1:8080/x"
    assert USER.check("http://0177.0.0.1/") == "http://127.0.0.1/"


def test_user_mode_reaches_private_but_not_other_schemes() -> None:
    assert USER.check("http://10.0.0.1/") == "http://10.0.0.1/"
    assert USER.check("http://user:pw@intranet/").startswith("http://user:pw@intranet")
    with pytest.raises(BlockedUrl, match="only http and https"):
        USER.check("file:///etc/passwd")


def test_allow_private_lifts_private_but_not_metadata() -> None:
    policy = UrlPolicy(mode="agent", allow_private=True)
    assert policy.check("http://10.0.0.1/")
    assert policy.check("http://127.0.0.1:1/")
    assert policy.check("http://localhost/")
    with pytest.raises(BlockedUrl, match="metadata"):
        policy.check("http://169.254.169.254/")
    with pytest.raises(BlockedUrl, match="unspecified"):
        policy.check("http://0.0.0.0/")


def test_allow_list_is_exact() -> None:
    policy = UrlPolicy(mode="agent", allow=("127.0.0.1/32",))
    assert policy.check("http://127.0.0.1/")
    with pytest.raises(BlockedUrl):
        policy.check("http://127.0.0.2/")
    with pytest.raises(BlockedUrl):
        policy.check("http://10.0.0.1/")


def test_blocked_message_has_a_hint_only_when_liftable() -> None:
    with pytest.raises(BlockedUrl) as private:
        AGENT.check("http://10.0.0.1/")
    assert private.value.hint and "--allow-private" in private.value.hint
    with pytest.raises(BlockedUrl) as meta:
        AGENT.check("http://169.254.169.254/")
    assert meta.value.hint is None


def test_classify_public_addresses() -> None:
    for addr in ("8.8.8.8", "93.184.216.34", "2606:4700::1111", "2002:808:808::", "64:ff9b::808:808"):
        assert classify(ipaddress.ip_address(addr)) is None, addr


def test_guarded_transport_swaps_the_network_backend() -> None:
    # The one private touch in policy.py: fails loudly if httpx/httpcore change shape.
    transport = GuardedTransport(AGENT)
    assert type(transport._pool._network_backend).__name__ == "_GuardedBackend"


# -- connect-time checks, on real sockets -------------------------------------------------

def _resolver(table: dict[str, list[str]]):
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def _get(policy: UrlPolicy, url: str):
    async with policy.make_client(timeout=5) as client:
        return await fetch(url, client=client, policy=policy, timeout=5)


def test_hostname_resolving_to_loopback_is_blocked_at_connect(web) -> None:
    resolver = _resolver({"public.test": ["127.0.0.1"]})
    policy = UrlPolicy(mode="agent", resolver=resolver)
    with pytest.raises(BlockedUrl) as info:
        asyncio.run(_get(policy, f"http://public.test:{web.port}/article"))
    assert "public.test resolves to 127.0.0.1" in str(info.value)
    assert str(info.value).startswith(f"http://public.test:{web.port}/article: ")
    assert web.count("/article") == 0  # nothing reached the server


def test_any_private_answer_condemns_the_host(web) -> None:
    policy = UrlPolicy(mode="agent", resolver=_resolver({"mixed.test": ["93.184.216.34", "10.0.0.7"]}))
    with pytest.raises(BlockedUrl, match="10.0.0.7"):
        asyncio.run(_get(policy, "http://mixed.test/"))


def test_connection_goes_to_the_checked_address(web) -> None:
    # "pinned.test" exists in no DNS: the page can only arrive if the connection is made
    # to the address our resolver returned and the policy checked, with no second lookup.
    resolver = _resolver({"pinned.test": ["127.0.0.1"]})
    policy = UrlPolicy(mode="agent", allow=("127.0.0.1/32",), resolver=resolver)
    result = asyncio.run(_get(policy, f"http://pinned.test:{web.port}/echo"))
    assert result.status == 200
    assert f"pinned.test:{web.port}" in result.text  # the Host header keeps the name
    assert resolver.calls == ["pinned.test"]  # type: ignore[attr-defined]


def test_rebinding_between_hops_is_caught(web) -> None:
    # The first answer is allowed, the next lookup (for the redirect) says 10.x: blocked.
    answers = iter([["127.0.0.1"], ["10.0.0.9"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    policy = UrlPolicy(mode="agent", allow=("127.0.0.1/32",), resolver=rebinding)

    async def go():
        async with policy.make_client(timeout=5) as client:
            # A fresh connection per hop: the server closes after each answer.
            return await fetch(f"http://rebind.test:{web.port}/redirect/to?url=http://rebind.test:{web.port}/article",
                               client=client, policy=policy, timeout=5)

    with pytest.raises(BlockedUrl, match="resolves to 10.0.0.9"):
        asyncio.run(go())
    assert web.count("/article") == 0


def test_agent_fetch_needs_a_guarded_client(web) -> None:
    from vdr_cli.net.client import make_client

    async def go():
        async with make_client() as client:
            await fetch(web.url("/article"), client=client, policy=AGENT)

    with pytest.raises(ValueError, match="make_client"):
        asyncio.run(go())


def test_guarded_client_ignores_proxy_environment(web, monkeypatch: pytest.MonkeyPatch) -> None:
    # Through a proxy the address check would judge the proxy, not the target.
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
    monkeypatch.setenv("http_proxy", "http://10.255.255.1:3128")
    policy = UrlPolicy(mode="agent", allow=("127.0.0.1/32",))
    result = asyncio.run(_get(policy, web.url("/article")))
    assert result.status == 200
