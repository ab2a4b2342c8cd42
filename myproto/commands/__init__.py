"""
What each command means, written once: storage, retrieval, arithmetic,
items, the crawler, C{watch} and the server's own commands, each a function
from a typed request and the L{myproto.cache.Cache} to reply lines, built
from an L{myproto.wire.replies.Outcome} where protocols share the meaning.
L{myproto.commands.dispatch} finds the function for a request.

Nothing here touches a transport or the reactor.
"""
