"""The manager, in the staff group: decides the remedy, resolves or reopens a ticket."""

from aiogram import Router

from handlers.filters import HasRole
from handlers.manager import remedy

router = Router(name=__name__)
router.message.filter(HasRole("manager"))
router.callback_query.filter(HasRole("manager"))
router.include_router(remedy.router)
