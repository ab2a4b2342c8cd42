"""
Bytes to typed requests, and results to bytes: the protocols' grammar.

Nothing here touches the store, a transport or the reactor.  The modules
import one way: L{numbers} <- L{classic} <- L{meta} <- L{text} <- L{replies}.
"""
