//! A kubelet's side of the Container Runtime Interface: the CRI v1 gRPC
//! clients (`k8s-cri`, generated with tonic) connected to a runtime's
//! unix socket.

use std::path::Path;

pub use k8s_cri::v1 as api;
pub use tokio;
pub use tonic;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the CRI socket at `socket` (containerd's gRPC address):
/// the runtime service and the image service share one channel.
///
/// # Errors
/// When the socket does not accept a connection.
pub async fn connect(
    socket: &Path,
) -> Result<(RuntimeServiceClient<Channel>, ImageServiceClient<Channel>), tonic::transport::Error> {
    let socket = socket.to_path_buf();
    // The URI is not used: every connection goes to the socket.
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    Ok((
        RuntimeServiceClient::new(channel.clone()),
        ImageServiceClient::new(channel),
    ))
}
