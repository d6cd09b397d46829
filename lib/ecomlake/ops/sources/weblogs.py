"""Web server access logs in the combined log format, like the course's accesslog.txt:

    IP - - [dd/Mon/yyyy:HH:MM:SS +0000] "METHOD /path HTTP/1.1" status bytes "referer" "agent"

`generate_logs(out_dir, date, lines, seed)` writes one day's file, lines in time order,
deterministically from (date, lines, seed). Some clients are crawlers; the feed reader at
198.46.149.143 (the address the course's daily log job drops) polls every few minutes; about
one line in a thousand (`broken_share`; at least one in files of 20 lines or more) is
deliberately broken, so parsers must cope. The broken lines take the kinds in `kinds` in turn
(so a file with as many broken lines as kinds has every kind):

  truncated            cut inside the request (client and time intact)
  garbage              40 characters of noise, no client, no time
  no_bracket           the timestamp's closing bracket missing and its date mangled
  impossible_time      [32/Foo/2015:99:99:99 +0100]: bracketed but no real time
  unterminated_agent   the user agent's closing quote missing (line 8,899 of the course log)
  bad_request          spaces inside the quoted request
  empty                an empty line
  long                 a 64 KiB request path, cut before the agent's closing quote
  non_utf8             a Latin-1 byte (0xE9) in the user agent: not valid UTF-8

Client and time still parse in truncated, unterminated_agent, bad_request, long and non_utf8
lines; garbage, no_bracket, impossible_time and empty lines have neither a usable client nor a
time. `non_utf8` is off by default (`kinds=ALL_KINDS` turns it on) so that default files stay
valid UTF-8 text.
"""
from __future__ import annotations

import datetime as dt
import random
import re
from pathlib import Path

import numpy as np

from ecomlake.ops.sources.generator import check_seed

DROPPED_IP = "198.46.149.143"
DROPPED_SHARE = 0.01       # of the lines: the course file has 82 in 10,000
MAX_LINES = 50_000_000
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/96.0.4664.110 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/15.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 15_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/15.2 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 12; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/96.0.4664.104 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:95.0) Gecko/20100101 Firefox/95.0",
)
BOTS = ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)")
FEED_AGENT = "Tiny Tiny RSS/1.11 (http://tt-rss.org/)"
SEARCH_TERMS = ("mobile 6 inch", "mobile latest", "tablet wifi", "laptop 14 inch", "gaming laptop",
                "4k tv", "noise cancelling headphones", "smart watch", "board game", "yoga mat",
                "running shoes", "antivirus", "novel", "football")
CATEGORIES = ("electronics", "books", "toys", "sports", "software")
REFERERS = ("-", "-", "https://www.google.com/", "https://www.bing.com/",
            "https://shop.example.com/", "https://shop.example.com/cart")


def _request(r: random.Random) -> tuple[str, str, int, int]:
    """(method, path, status, bytes)."""
    x = r.random()
    if x < 0.25:
        path, size = f"/product/{r.randint(1, 10_000)}", r.randint(8_000, 40_000)
    elif x < 0.40:
        path, size = f"/category/{r.choice(CATEGORIES)}?page={r.randint(1, 5)}", r.randint(15_000, 60_000)
    elif x < 0.52:
        path, size = f"/search?q={r.choice(SEARCH_TERMS).replace(' ', '+')}", r.randint(10_000, 50_000)
    elif x < 0.75:
        ext = r.choice(("css", "js", "png", "jpg", "woff2"))
        path, size = f"/static/{r.choice(('app', 'vendor', 'logo', 'hero', 'font'))}.{ext}", r.randint(500, 300_000)
    elif x < 0.82:
        path, size = "/", r.randint(20_000, 35_000)
    elif x < 0.88:
        return "POST", "/cart/add", 302, 0
    elif x < 0.91:
        return "POST", "/checkout", r.choice((200, 200, 200, 402)), r.randint(1_000, 5_000)
    elif x < 0.95:
        path, size = f"/api/v1/stock/{r.randint(1, 10_000)}", r.randint(80, 400)
    else:
        path, size = "/robots.txt", 312
    y = r.random()
    if y < 0.02:
        return "GET", path, 404, r.randint(200, 600)
    if y < 0.025:
        return "GET", path, 500, r.randint(200, 600)
    if y < 0.08:
        return "GET", path, 304, 0
    return "GET", path, 200, size


def _ip(r: random.Random, pool: list[str]) -> str:
    """Returning visitors (a few very active) or a new address; never the dropped one."""
    if r.random() < 0.7:
        return pool[min(int(r.paretovariate(1.2)) - 1, len(pool) - 1)]
    ip = f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    return pool[0] if ip == DROPPED_IP else ip


def _stamp(t: dt.datetime) -> str:
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S} +0000"


TEXT_KINDS = ("truncated", "garbage", "no_bracket", "impossible_time", "unterminated_agent",
              "bad_request", "empty", "long")
ALL_KINDS = TEXT_KINDS + ("non_utf8",)
LONG_PATH = 1 << 16


def _broken(line: str, kind: str, r: random.Random) -> str:
    """`line` broken in the way `kind` names (see the module's docstring). Non-UTF-8 bytes are
    lone surrogates here; generate_logs writes them back as the raw bytes (surrogateescape)."""
    head, request, tail = line.split('"', 2)        # tail: ' status bytes "ref" "agent"'
    if kind == "truncated":                         # a write cut inside the request
        return line[: line.index('"') + r.randint(2, 6)]
    if kind == "garbage":
        return "#\x7f?? " + "".join(r.choice("abcdef0123456789") for _ in range(40))
    if kind == "no_bracket":
        return line.replace(" +0000]", " +0000", 1).replace("[", "[99/Xyz/20", 1)
    if kind == "impossible_time":
        return re.sub(r"\[[^\]]*\]", "[32/Foo/2015:99:99:99 +0100]", line, count=1)
    if kind == "unterminated_agent":
        return line[:-1]
    if kind == "bad_request":
        return f'{head}"GET /search?q=two words HTTP/1.1"{tail}'
    if kind == "empty":
        return ""
    if kind == "long":
        method, path, protocol = request.split(" ")
        return f'{head}"{method} {path}?pad={"A" * LONG_PATH} {protocol}"{tail}'[:-1]
    if kind == "non_utf8":
        return line[:-1] + ' caf\udce9"'
    raise ValueError(f"unknown kind of broken line {kind!r}; known: {', '.join(ALL_KINDS)}")


def log_lines(day: dt.date, lines: int, seed: int, broken_share: float = 0.001,
              kinds: tuple[str, ...] = TEXT_KINDS):
    """The file's lines, in time order (a generator: files of millions of lines stream)."""
    keys = np.random.SeedSequence([seed, day.toordinal(), lines])
    g = np.random.Generator(np.random.PCG64(keys))
    r = random.Random(int(keys.generate_state(1, np.uint64)[0]))
    pool = [f"{r.randint(1, 223)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
            for _ in range(max(10, min(lines // 20, 100_000)))]
    pool = [ip for ip in pool if ip != DROPPED_IP]
    start = dt.datetime.combine(day, dt.time())
    secs = np.sort(g.integers(0, 86_400, lines, dtype=np.int32))
    n_dropped = max(1, round(DROPPED_SHARE * lines)) if lines >= 2 else 0
    n_broken = (min(lines - n_dropped, max(1, round(lines * broken_share)))
                if lines >= 20 and broken_share else 0)
    special = g.choice(lines, n_dropped + n_broken, replace=False).tolist()
    dropped = set(special[:n_dropped])
    broken = {i: kinds[j % len(kinds)] for j, i in enumerate(sorted(special[n_dropped:]))}
    for i, s in enumerate(secs.tolist()):
        t = start + dt.timedelta(seconds=s)
        if i in dropped:
            ip, agent, ref = DROPPED_IP, FEED_AGENT, "-"
            method, path, status, size = "GET", "/feed/rss.xml", 200, r.randint(9_000, 11_000)
        else:
            ip = _ip(r, pool)
            agent = r.choice(BOTS) if r.random() < 0.1 else r.choice(AGENTS)
            ref = r.choice(REFERERS)
            method, path, status, size = _request(r)
        line = (f'{ip} - - [{_stamp(t)}] "{method} {path} HTTP/1.1" {status} '
                f'{size if size else "-"} "{ref}" "{agent}"')
        yield _broken(line, broken[i], r) if i in broken else line


def parse_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"date must be YYYY-MM-DD, got {value!r}") from None


def generate_logs(out_dir: str | Path, date: str | dt.date, lines: int, seed: int,
                  broken_share: float = 0.001, kinds: tuple[str, ...] = TEXT_KINDS) -> Path:
    """Write access_<date>.log under out_dir (created if missing) and return its path."""
    day = parse_date(date)
    if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= MAX_LINES:
        raise ValueError(f"lines must be an integer from 1 to {MAX_LINES}, got {lines!r}")
    check_seed(seed)
    if not 0 <= broken_share <= 1:
        raise ValueError(f"broken_share must be from 0 to 1, got {broken_share!r}")
    if not kinds or set(kinds) - set(ALL_KINDS):
        raise ValueError(f"kinds must be some of {ALL_KINDS}, got {kinds!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"access_{day.isoformat()}.log"
    tmp = path.with_suffix(".log.tmp")
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        for line in log_lines(day, lines, seed, broken_share, kinds):
            f.write(line + "\n")
    tmp.replace(path)           # readers never see half a file
    return path
