"""Errors a person can act on. Each message names the system, its address and what to do next;
none ever contains a password."""


class EcomlakeError(RuntimeError):
    """Base of the errors that stop a job with a clear message (exit code 2, no traceback)."""


class ServiceUnavailable(EcomlakeError):
    """A server we need is down or does not answer."""


class LoginRefused(EcomlakeError):
    """A server answered but refused our credentials."""


class DataQualityError(EcomlakeError):
    """A batch breaks the data contract badly enough that nothing is written."""


class ReconciliationError(EcomlakeError):
    """Rows do not match where they must: the source's keys and silver + quarantine, or a
    published table and its gold table. The run stops before the next layer is written."""


class MassDeleteError(EcomlakeError):
    """A run would delete more of a silver table than its configured share (or the whole of it,
    from an empty snapshot); it stops before silver is written."""


START_HINT = "start the local stack with `ecomlake stack up` (or fix {keys} in {conf})"


def unavailable(system: str, role: str, address: str, reason: str, keys: str, conf: str):
    return ServiceUnavailable(
        f"{system} ({role}) at {address} is not answering: {reason}. Next: "
        + START_HINT.format(keys=keys, conf=conf))


def refused(system: str, address: str, user: str, password_env: str, reason: str):
    return LoginRefused(
        f"{system} at {address} refused the login of user '{user}': {reason}. Next: check the "
        f"password in ${password_env} (the local stack's is in .local/stack.env)")
