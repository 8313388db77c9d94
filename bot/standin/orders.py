"""A shop's orders export, as the stand-ins' managers send it with /orders (the tests, the
benchmark): CSV with the bundled policy's header names."""

from __future__ import annotations

HEADERS = "订单编号,商品名称,批次号,送达时间,门店,区域,备注"


def orders_file(rows: int) -> bytes:
    """An export with `rows` orders, FS2026112301 the first."""
    lines = [HEADERS]
    lines += [
        f"FS{2026112301 + i},红玫瑰花束 {i % 50} 支,B2026{i % 300:04d},"
        f"2026-11-23 10:00,静安店,上海,第 {i} 单"
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()
