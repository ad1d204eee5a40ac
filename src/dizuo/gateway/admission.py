"""How one call takes its rate limits and its holds: one :class:`Admission` a call.

Every call is admitted the same way as its user sees it: a 429 comes before a 402, neither leaves
anything taken, a refused call's request still counts against its limits, and the hold is in place
before any request reaches an upstream. Where the limits and the wallet live decides how that is
done fastest, and each way is one class:

- :class:`LimitsThenHold` — both in this process's memory: the limits, then the hold, in turn.
- :class:`LimitsBesideHold` — the limits in Redis (or the wallet there and the limits here): the
  limits' answer is on its way while the hold is asked for; a refusal gives the hold back.
- :class:`LimitsWithHold` — both in Redis: one script takes the limits and holds the money.
- :class:`AskedEarly` — the same, the script sent as soon as the call is read, for the deployment
  the router will try first, so Redis's round trip passes while the call gets ready.

:meth:`Admission.hold` is called once per deployment tried (a failed attempt's hold is released by
the caller); :meth:`Admission.end` once when the call ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dizuo.billing import Hold, Meter
from dizuo.billing.shared import Asking
from dizuo.errors import DizuoError, InsufficientQuota
from dizuo.limits import Limiter, Permit, Subject
from dizuo.routing import Deployment

__all__ = ["Admission", "AskedEarly", "LimitsBesideHold", "LimitsThenHold", "LimitsWithHold", "Terms"]

# The deployment as it is priced for the call (a batch's lines at the batch price).
Priced = Callable[[Deployment], Deployment]
# A call's rate limits and its token estimate.
Due = tuple[tuple[Subject, ...], int]


@dataclass(frozen=True, slots=True)
class Terms:
    """What a call holds, and for whom: its organization, each deployment as priced for the call,
    and its worst case in prompt and completion tokens."""

    org_id: str
    priced: Priced
    prompt: int
    completion: int


class Admission:
    """A call's rate limits and holds. :attr:`permit` is its rate limits' permit once taken."""

    def __init__(self, meter: Meter, terms: Terms) -> None:
        self.meter = meter
        self.terms = terms
        self.permit: Permit | None = None

    async def hold(self, dep: Deployment) -> Hold:
        """Hold the call's worst case for *dep*, taking its rate limits first if they are not yet
        taken: 429 or 402 having taken nothing."""
        raise NotImplementedError

    async def end(self) -> None:
        """The call ended: what it asked for and did not use is given back, and rate limits never
        taken (a 402's, or a call with no deployment) are taken now, as its request counts."""

    def _reserve(self, dep: Deployment) -> Awaitable[Hold]:
        terms = self.terms
        return self.meter.reserve(terms.org_id, terms.priced(dep), terms.prompt, terms.completion)


class LimitsThenHold(Admission):
    """Limits and wallet in this process: the limits (*limits*, not started), then the hold."""

    def __init__(self, meter: Meter, terms: Terms, limits: Awaitable[Permit | None] | None) -> None:
        super().__init__(meter, terms)
        self.limits = limits  # until awaited

    async def _take_limits(self) -> None:
        limits, self.limits = self.limits, None
        if limits is not None:
            self.permit = await limits

    async def hold(self, dep: Deployment) -> Hold:
        await self._take_limits()
        return await self._reserve(dep)

    async def end(self) -> None:
        with contextlib.suppress(DizuoError):  # a refused call's request still counts
            await self._take_limits()


class LimitsBesideHold(LimitsThenHold):
    """The limits' answer (*limits*: a task already sent to Redis, or a coroutine here) awaited
    while the hold is asked for; refused or cancelled, the hold goes back."""

    async def hold(self, dep: Deployment) -> Hold:
        holding = asyncio.ensure_future(self._reserve(dep))
        try:
            await self._take_limits()
        except BaseException:
            await asyncio.shield(self._unhold(holding))
            raise
        return await holding

    async def _unhold(self, holding: asyncio.Future[Hold]) -> None:
        with contextlib.suppress(DizuoError):
            await self.meter.release(await holding)


class LimitsWithHold(Admission):
    """Limits and wallet in Redis: the first hold's script takes the limits (*due*) too."""

    def __init__(self, meter: Meter, terms: Terms, limiter: Limiter, due: Due | None) -> None:
        super().__init__(meter, terms)
        self.limiter = limiter
        self.due = due  # until a hold took them

    async def hold(self, dep: Deployment) -> Hold:
        if self.due is None:
            return await self._reserve(dep)
        terms = self.terms
        asking = self.meter.ask(terms.org_id, terms.priced(dep), terms.prompt, terms.completion, *self.due)
        try:
            hold, self.permit = await self.meter.admitted(asking)
        except InsufficientQuota:
            raise  # the limits stay due: the call's end counts its request, as any 402's
        except BaseException:
            self.due = None  # a 429, or cancelled (what the script took went back)
            raise
        self.due = None
        return hold

    async def end(self) -> None:
        if self.due is not None:
            (subjects, estimate), self.due = self.due, None
            with contextlib.suppress(DizuoError):  # a refused call's request still counts
                self.permit = await self.limiter.acquire(subjects, estimate)


class AskedEarly(LimitsWithHold):
    """:class:`LimitsWithHold`, with the first script (*asking*) sent for *first*, the deployment
    the router tries first, before the call is ready. If another deployment is tried instead, that
    hold goes back and the limits it took stay; after a 402, the limits (*due*) are due again."""

    def __init__(
        self, meter: Meter, terms: Terms, limiter: Limiter, due: Due | None, first: Deployment, asking: Asking
    ) -> None:
        super().__init__(meter, terms, limiter, None)
        self.first = first
        self.asking: Asking | None = asking  # until collected
        self._due = due

    async def hold(self, dep: Deployment) -> Hold:
        asking, self.asking = self.asking, None
        if asking is None:
            return await super().hold(dep)
        try:
            hold, self.permit = await self.meter.admitted(asking)
        except InsufficientQuota:
            # Nothing was taken: the limits are due (the call's end counts its request, as any
            # 402's), and another deployment than the one asked for is asked anew.
            self.due = self._due
            if dep is self.first:
                raise
            return await super().hold(dep)
        if dep is self.first:
            return hold
        # The router's first choice was passed over (its circuit is open, or it is at its capacity):
        # its hold goes back; the rate limits, the same for every deployment, stay.
        await self.meter.release(hold)
        return await super().hold(dep)

    async def end(self) -> None:
        asking, self.asking = self.asking, None
        if asking is not None:  # the call ended before it needed its hold (cancelled, no deployment)
            try:
                hold, self.permit = await self.meter.admitted(asking)
            except InsufficientQuota:
                self.due = self._due  # counted below, as any 402's request
            except DizuoError:
                pass
            else:
                await self.meter.release(hold)
        await super().end()
