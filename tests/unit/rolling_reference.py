"""An independent reference of the sliding VWAP and moving averages: plain loops over a day's bars,
for the unit, Flink and integration tests."""

from __future__ import annotations

from collections import defaultdict

from itchflow.analytics.rolling import RollingConfig

S = 1_000_000_000


def rolling_reference(
    venue: str,
    slide_bars: dict[tuple[int, str, int], tuple[int, int, int]],
    ma_closes: dict[tuple[int, str, int], int],
    config: RollingConfig,
) -> tuple[dict, dict]:
    """The final values of ``venue`` from its bars of the slide, ``(trading date, symbol, start) ->
    (volume, notional, trades)``, and the closes of its bars of the averages' size, ``(trading date,
    symbol, start) -> close``:

    * ``{(venue, date, symbol, window end): (volume, notional, trades, vwap)}`` for every window end
      that a bar enters (its end) or leaves (its end + the window), if the window holds a bar;
    * ``{(venue, date, symbol, bar start): (sma, ema)}`` from the n-th bar of each day on, the EMA
      from the day's first close with alpha = 2 / (n + 1)."""
    window, slide = config.vwap_window_s * S, config.vwap_slide_s * S
    vwaps = {}
    for day, symbol, start in slide_bars:
        for end in (start + slide, start + window + slide):
            inside = [
                slide_bars[(day, symbol, s)]
                for s in range(end - window, end, slide)
                if (day, symbol, s) in slide_bars
            ]
            if inside:
                volume, notional, trades = (sum(bar[i] for bar in inside) for i in range(3))
                vwaps[(venue, day, symbol, end)] = (volume, notional, trades, notional / volume)
    averages = {}
    n = config.ma_bars
    alpha = 2 / (n + 1)
    series: dict[tuple[int, str], list[tuple[int, int]]] = defaultdict(list)
    for (day, symbol, start), close in ma_closes.items():
        series[(day, symbol)].append((start, close))
    for (day, symbol), bars in series.items():
        bars.sort()
        ema: float | None = None
        for k, (start, close) in enumerate(bars, start=1):
            ema = float(close) if ema is None else alpha * close + (1 - alpha) * ema
            if k >= n:
                averages[(venue, day, symbol, start)] = (sum(c for _, c in bars[k - n : k]) / n, ema)
    return vwaps, averages


def window_value(
    slide_bars: dict[tuple[int, str, int], tuple[int, int, int]],
    day: int,
    symbol: str,
    end: int,
    config: RollingConfig,
) -> tuple[int, int, int, float] | None:
    """(volume, notional, trades, vwap) of the window ending at ``end``; None if it holds no bar."""
    window, slide = config.vwap_window_s * S, config.vwap_slide_s * S
    inside = [
        slide_bars[(day, symbol, s)]
        for s in range(end - window, end, slide)
        if (day, symbol, s) in slide_bars
    ]
    if not inside:
        return None
    volume, notional, trades = (sum(bar[i] for bar in inside) for i in range(3))
    return volume, notional, trades, notional / volume


def assert_rolling_values(
    venue: str,
    got_vwaps: dict[tuple, tuple],
    got_averages: dict[tuple, tuple],
    slide_bars: dict[tuple[int, str, int], tuple[int, int, int]],
    ma_closes: dict[tuple[int, str, int], int],
    config: RollingConfig,
) -> None:
    """The current values (deleted keys dropped) equal :func:`rolling_reference`, except for rows the
    rules keep after a broken trade took a bar: a window written because that bar entered or left it
    (it must hold its current value), a bar pushed below the n-th of its day (SMA None, its current
    EMA)."""
    expected_vwaps, expected_averages = rolling_reference(venue, slide_bars, ma_closes, config)
    kept = {
        key: window_value(slide_bars, key[1], key[2], key[3], config)
        for key in got_vwaps.keys() - expected_vwaps.keys()
    }
    assert None not in kept.values(), "an empty window must be deleted"
    assert got_vwaps == expected_vwaps | kept
    below = {
        key: (None, _ema_at(ma_closes, key[1], key[2], key[3], config))
        for key in got_averages.keys() - expected_averages.keys()
    }
    assert got_averages == expected_averages | below


def _ema_at(
    ma_closes: dict[tuple[int, str, int], int], day: int, symbol: str, at: int, config: RollingConfig
) -> float | None:
    alpha, ema = 2 / (config.ma_bars + 1), None
    for (date, name, start), close in sorted(ma_closes.items()):
        if (date, name) == (day, symbol):
            ema = float(close) if ema is None else alpha * close + (1 - alpha) * ema
            if start == at:
                return ema
    return None
