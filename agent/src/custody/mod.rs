//! The chain-of-custody record of an acquisition: what the manifest's `custody` section says of who
//! ran it, where and with which build ([`facts`]), and the KMS signature of its custody statement
//! ([`kms`]). The record's shape, the statement's bytes and the offline check are the engine's
//! (`imaging::custody`); the AWS calls and the host's facts are gathered here.

pub mod facts;
pub mod kms;
