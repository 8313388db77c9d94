"""What the manager's insight is handed over as: a chart (PNG), a workbook (.xlsx) and a CSV.

Each renderer is synchronous and self-contained; callers run it in a thread
(`asyncio.to_thread`). matplotlib and XlsxWriter are imported inside the functions, so that
importing this package costs the bot nothing at start."""
