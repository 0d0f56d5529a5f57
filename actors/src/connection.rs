//! A connection actor: one per authenticated peer, on either side. It drives the incoming half
//! of an `osmesh-net` RPC peer, forwarding every call to its owner, and tells the owner once
//! when the link is gone. Outgoing calls go through the `Peer` handle the owner keeps.

use actix::prelude::*;
use osmesh_net::peer::{Incoming, IncomingCalls, Peer};

/// Which link of its owner a connection is. Owners number their links and ignore messages
/// from links they have already replaced, so a late `LinkClosed` never tears down a new one.
pub type LinkId = u64;

/// A call or notification that arrived on a link.
#[derive(Message)]
#[rtype(result = "()")]
pub struct InboundCall {
    pub link: LinkId,
    pub incoming: Incoming,
}

/// The link is gone (peer closed, heartbeat death, read error or local close).
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkClosed {
    pub link: LinkId,
}

pub struct Connection {
    link: LinkId,
    peer: Peer,
    calls: Recipient<InboundCall>,
    closed: Recipient<LinkClosed>,
}

impl Connection {
    /// Starts the actor for one authenticated peer and returns at once.
    pub fn start(
        link: LinkId,
        peer: Peer,
        incoming: IncomingCalls,
        calls: Recipient<InboundCall>,
        closed: Recipient<LinkClosed>,
    ) -> Addr<Connection> {
        Connection::create(move |ctx| {
            ctx.add_stream(incoming);
            Connection {
                link,
                peer,
                calls,
                closed,
            }
        })
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        self.peer.close();
        Running::Stop
    }
}

impl StreamHandler<Incoming> for Connection {
    fn handle(&mut self, incoming: Incoming, _ctx: &mut Self::Context) {
        self.calls.do_send(InboundCall {
            link: self.link,
            incoming,
        });
    }

    /// The incoming stream ends exactly when the peer's driver has gone.
    fn finished(&mut self, ctx: &mut Self::Context) {
        self.closed.do_send(LinkClosed { link: self.link });
        ctx.stop();
    }
}
