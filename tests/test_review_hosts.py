"""Where the review page answers: Host header names, loopback, the exposure warning, the URL."""

from pipeline.review.hosts import (
    allowed_host_names,
    exposure_warning,
    host_allowed,
    is_loopback,
    review_url,
    warn_if_exposed,
)


def test_host_names_and_loopback():
    assert allowed_host_names("::1") == {"localhost", "127.0.0.1", "[::1]"}
    assert allowed_host_names("[fe80::1]", ["Box.LAN", " "]) == {
        "localhost",
        "127.0.0.1",
        "[::1]",
        "[fe80::1]",
        "box.lan",
    }
    allowed = allowed_host_names("127.0.0.1")
    assert host_allowed("localhost:8765", allowed) and not host_allowed("localhost:123456", allowed)
    assert not host_allowed("localhost.:8765", allowed)
    for host in ("127.0.0.1", "127.3.4.5", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.20", "fe80::1", "reviewbox.lan"):
        assert not is_loopback(host), host
    assert review_url("::1", 8765, "tok") == "http://[::1]:8765/?token=tok"
    assert review_url("0.0.0.0", 8765, "tok") == "http://127.0.0.1:8765/?token=tok"
    assert review_url("::", 9000, "tok") == "http://[::1]:9000/?token=tok"


def test_binding_beyond_loopback_warns_on_stderr(capsys):
    for host in ("127.0.0.1", "localhost", "::1"):
        assert exposure_warning(host) is None
        assert not warn_if_exposed(host)
    assert capsys.readouterr() == ("", "")
    for host in ("0.0.0.0", "::", "192.168.1.20"):
        assert warn_if_exposed(host, 9000)
        captured = capsys.readouterr()
        assert captured.out == ""
        warning = captured.err
        assert warning.startswith("warning:") and "beyond this machine" in warning
        assert "police responses" in warning and "reachable from the network" in warning
        assert "token" in warning and "only protection" in warning
        assert "ssh -N -L 9000:127.0.0.1:9000" in warning
