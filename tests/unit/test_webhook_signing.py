"""Signatures are verified by the `standardwebhooks` reference library (what receivers run)."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.notifications.signing import SECRET_PATTERN, new_secret, secret_key, sign, signed_headers

BODY = b'{"id":"01J0000000000000000000000","type":"entitlements.balance.threshold","data":{"usage":"81"}}'


def test_generated_secret_is_whsec_base64_of_32_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and SECRET_PATTERN.match(secret)
    assert len(secret_key(secret)) == 32
    assert new_secret() != secret


@pytest.mark.parametrize("prefix", ["whsec_", ""])
def test_standardwebhooks_library_verifies_our_headers(prefix: str) -> None:
    secret = prefix + base64.b64encode(b"k" * 24).decode()
    now = int(time.time())
    headers = signed_headers(secret, "01J0000000000000000000000", now, BODY)
    assert Webhook(secret).verify(BODY, headers)["data"] == {"usage": "81"}
    # The svix-* spelling carries the same values (Svix libraries read those).
    svix = {k.replace("svix-", "webhook-"): v for k, v in headers.items() if k.startswith("svix-")}
    assert Webhook(secret).verify(BODY, svix)["type"] == "entitlements.balance.threshold"
    assert headers["webhook-id"] == "01J0000000000000000000000"
    assert headers["webhook-signature"].startswith("v1,")


def test_tampered_body_wrong_secret_or_id_fail_verification() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = signed_headers(secret, "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"81", b"82"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_signature_matches_the_library_for_a_fixed_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}') == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_secret_that_is_not_base64_is_rejected() -> None:
    with pytest.raises(ValueError, match="base64"):
        secret_key("whsec_" + "=" * 40)
