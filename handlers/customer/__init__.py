"""The customer, in a private chat with the bot."""

from aiogram import Router

from handlers.customer import follow_up, intake, ticket
from handlers.filters import HasRole
from handlers.middlewares import WatchWords

router = Router(name=__name__)
router.message.filter(HasRole("customer"))
router.callback_query.filter(HasRole("customer"))
router.message.middleware(WatchWords())
router.include_routers(follow_up.router, intake.router, ticket.router)
