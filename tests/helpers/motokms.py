"""moto's KMS, patched to refuse a disabled key as KMS does.

moto (5.1.22) signs and verifies with a key whatever its state: `DisableKey` and `ScheduleKeyDeletion`
change `key_state` and nothing reads it. KMS refuses every cryptographic operation on such a key:
`DisabledException` (HTTP 400) for a disabled one, `KMSInvalidStateException` for one pending
deletion. A collector told to sign with a disabled key must see that refusal.
"""

from moto.core.exceptions import JsonRESTError
from moto.kms.models import KmsBackend


def _usable(backend, key_id):
    key = backend.describe_key(key_id)
    if key.key_state == "Disabled":
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state == "PendingDeletion":
        raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")


def install():
    """Patches Sign and Verify (once)."""
    if getattr(KmsBackend, "_forensic_collector_states", False):
        return
    for name in ("sign", "verify"):
        original = getattr(KmsBackend, name)

        def checked(self, key_id, *args, _original=original, **kwargs):
            _usable(self, key_id)
            return _original(self, key_id, *args, **kwargs)

        setattr(KmsBackend, name, checked)
    KmsBackend._forensic_collector_states = True
