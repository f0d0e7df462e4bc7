//! Helpers shared by the cluster integration tests.
#![allow(dead_code)]

pub mod cluster;
pub mod redis;
