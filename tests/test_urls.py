"""URLs as messages and traces show them."""

from vdr_cli.net.urls import public_url


def test_public_url_drops_credentials_and_query():
    assert public_url("https://user:pw@api.example.com:8443/v1/search?api_key=SECRET#x") == "https://api.example.com:8443/v1/search"
    assert public_url("http://[::1]:8080/v1") == "http://[::1]:8080/v1"
    assert public_url("http://h:notaport/p") == "http://h/p"
