//! The Rust comparison peer: tarpc over TCP with its serde transport and bincode, TCP_NODELAY
//! on both ends. The server encodes the reply on every call (tarpc has no way to hand it
//! pre-encoded bytes); the client decodes it, as osmesh's region does.

use crate::reply::{os_list, OSYSTEMS};
use crate::rpc::{measure, spawn_server, PeerFigures, RpcPlan};
use anyhow::Result;
use futures::StreamExt;
use osmesh_net::messages::OperatingSystemList;
use std::sync::Arc;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[tarpc::service]
pub trait OsRegistry {
    async fn list_operating_systems() -> OperatingSystemList;
}

#[derive(Clone)]
struct Registry(Arc<OperatingSystemList>);

impl OsRegistry for Registry {
    async fn list_operating_systems(self, _: context::Context) -> OperatingSystemList {
        (*self.0).clone()
    }
}

pub async fn tarpc(plan: RpcPlan) -> Result<PeerFigures> {
    let addr = spawn_server(serve)?;
    let stream = TcpStream::connect(&addr).await?;
    stream.set_nodelay(true)?;
    let transport = tarpc::serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    );
    let client = OsRegistryClient::new(client::Config::default(), transport).spawn();
    let call = || call(&client);
    Ok(measure("tarpc (bincode/TCP)", plan, call).await)
}

async fn call(client: &OsRegistryClient) {
    match client.list_operating_systems(context::current()).await {
        Ok(list) => assert_eq!(list.osystems.len(), OSYSTEMS),
        Err(e) => panic!("tarpc call failed: {e}"),
    }
}

async fn serve(tx: std::sync::mpsc::Sender<String>) {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
        return;
    };
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let _ = tx.send(addr.to_string());
    let Ok((stream, _)) = listener.accept().await else {
        return;
    };
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let transport = tarpc::serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    );
    let registry = Registry(Arc::new(os_list()));
    BaseChannel::with_defaults(transport)
        .execute(registry.serve())
        .for_each(|response| async {
            tokio::spawn(response);
        })
        .await;
}

/// The cost of tarpc's bincode codec alone on the same reply, in microseconds per call
/// (encode, decode): the figure to set beside osmesh's `codec_alone`.
pub fn bincode_alone(iterations: u32) -> (f64, f64) {
    use tarpc::tokio_serde::{Deserializer, Serializer};
    let list = os_list();
    let mut codec = Bincode::<OperatingSystemList, OperatingSystemList>::default();
    let mut codec = std::pin::Pin::new(&mut codec);
    let started = std::time::Instant::now();
    let mut bytes = bytes::Bytes::new();
    for _ in 0..iterations {
        match codec.as_mut().serialize(std::hint::black_box(&list)) {
            Ok(b) => bytes = b,
            Err(e) => panic!("bincode encode failed: {e}"),
        }
    }
    let encode = started.elapsed() / iterations;
    let buffer = bytes::BytesMut::from(&bytes[..]);
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        match codec.as_mut().deserialize(std::hint::black_box(&buffer)) {
            Ok(back) => assert_eq!(back.osystems.len(), OSYSTEMS),
            Err(e) => panic!("bincode decode failed: {e}"),
        }
    }
    let decode = started.elapsed() / iterations;
    (encode.as_secs_f64() * 1e6, decode.as_secs_f64() * 1e6)
}
