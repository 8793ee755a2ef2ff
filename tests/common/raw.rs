//! Raw gRPC calls: any bytes to any method, as a broken or hostile client
//! would send them.

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

/// Sends and receives raw bytes, as a broken or hostile client would.
#[derive(Default)]
pub struct RawCodec;

pub struct Raw;

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

/// Sends `body` as one message to the method at `path` (e.g.
/// `/theia.v1.TenantService/ListTenants`) and answers the reply's bytes.
pub async fn raw_unary<T>(channel: T, path: &str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.into().to_string()))?;
    let streams = path.contains("/Watch");
    let path = http::uri::PathAndQuery::try_from(path.to_owned()).expect("a method path");
    if streams {
        // A watch answers with headers and then stays open: those headers
        // (with no error status) are its answer to a well-formed call.
        return grpc
            .server_streaming(tonic::Request::new(body), path, RawCodec)
            .await
            .map(|_| Vec::new());
    }
    grpc.unary(tonic::Request::new(body), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}
