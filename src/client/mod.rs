//! Layer 7, clients: the [`Producer`](producer::Producer) and the
//! [`Consumer`](consumer::Consumer), built on the topic layer and on consumer groups.

pub(crate) mod consumer;
pub(crate) mod producer;
