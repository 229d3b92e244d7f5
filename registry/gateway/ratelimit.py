"""Token buckets per user and per user×tool: in memory, or in Redis to hold across replicas.

A bucket holds up to ``rate`` tokens and refills at ``rate`` per minute. A call takes one
token from each of its buckets, or none at all when any of them is empty.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    rate_per_minute: int
    label: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    bucket: Bucket | None = None


class RateLimiter(Protocol):
    async def take(self, buckets: list[Bucket]) -> Verdict: ...

    async def close(self) -> None: ...


class MemoryRateLimiter:
    def __init__(self, max_keys: int = 50_000) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.max_keys = max_keys

    async def take(self, buckets: list[Bucket]) -> Verdict:
        now = time.monotonic()
        with self._lock:
            levels: list[float] = []
            for bucket in buckets:
                tokens, stamp = self._state.get(bucket.key, (float(bucket.rate_per_minute), now))
                tokens = min(float(bucket.rate_per_minute), tokens + (now - stamp) * bucket.rate_per_minute / 60.0)
                if tokens < 1.0:
                    wait = (1.0 - tokens) * 60.0 / bucket.rate_per_minute
                    return Verdict(False, wait, bucket)
                levels.append(tokens)
            for bucket, tokens in zip(buckets, levels, strict=True):
                self._state[bucket.key] = (tokens - 1.0, now)
            if len(self._state) > self.max_keys:
                self._prune(now)
        return Verdict(True)

    def _prune(self, now: float) -> None:
        """Forget buckets untouched for a minute: they have refilled, so forgetting them changes nothing."""
        for key in [k for k, (_, stamp) in self._state.items() if now - stamp >= 60.0]:
            del self._state[key]

    async def close(self) -> None:
        return None


# KEYS: bucket keys. ARGV: now (seconds), then one rate per key.
# Returns {1} when every bucket had a token (all debited), else {0, index, wait_ms}.
_TAKE = """
local now = tonumber(ARGV[1])
local levels = {}
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[i + 1])
  local state = redis.call('HMGET', key, 't', 's')
  local tokens = tonumber(state[1])
  local stamp = tonumber(state[2])
  if tokens == nil then tokens = rate; stamp = now end
  tokens = math.min(rate, tokens + (now - stamp) * rate / 60.0)
  if tokens < 1.0 then
    return {0, i, math.ceil((1.0 - tokens) * 60000.0 / rate)}
  end
  levels[i] = tokens
end
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 't', levels[i] - 1.0, 's', now)
  redis.call('EXPIRE', key, 120)
end
return {1}
"""


class RedisRateLimiter:
    def __init__(self, url: str, prefix: str = "bastion:rl:") -> None:
        self.redis: Redis = Redis.from_url(url)
        self.prefix = prefix
        self._script = self.redis.register_script(_TAKE)

    async def take(self, buckets: list[Bucket]) -> Verdict:
        # Redis's clock, not ours: replicas on different hosts then agree on refill.
        seconds, micros = await self.redis.time()
        now = seconds + micros / 1_000_000
        keys = [self.prefix + b.key for b in buckets]
        result = await self._script(keys=keys, args=[now, *(b.rate_per_minute for b in buckets)])
        if int(result[0]) == 1:
            return Verdict(True)
        index, wait_ms = int(result[1]), int(result[2])
        return Verdict(False, wait_ms / 1000.0, buckets[index - 1])

    async def close(self) -> None:
        await self.redis.aclose()


def create_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
