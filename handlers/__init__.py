"""aiogram routers, one per actor; the first match wins, so the fallback goes last."""

from aiogram import Router


def get_routers() -> list[Router]:
    from handlers import common, customer, manager, staff

    return [common.commands, manager.router, staff.router, customer.router, common.router]
