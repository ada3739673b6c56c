//! Global names and locks (OTP `global`): to be built.

use serde::{Deserialize, Serialize};

use super::ctx::Ctx;
use super::pid::{ExitReason, NodeName, Pid};
use super::time::Time;

/// Wire messages of the name service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NamesFrame {}

/// Effects of the name service for the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum NamesEffect {}

/// The name tables of one node.
#[derive(Debug, Default)]
pub struct Names {}

impl Names {
    /// A session with `node` is up.
    pub fn peer_up(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        let _ = (node, creation, ctx);
    }

    /// The session with `node` ended.
    pub fn peer_down(&mut self, node: &NodeName, creation: u32, ctx: &mut Ctx<'_>) {
        let _ = (node, creation, ctx);
    }

    /// A name-service frame from `node`.
    pub fn frame(&mut self, node: &NodeName, creation: u32, frame: NamesFrame, ctx: &mut Ctx<'_>) {
        let _ = (node, creation, ctx);
        match frame {}
    }

    /// A local process ended.
    pub fn exited(&mut self, pid: &Pid, reason: &ExitReason, ctx: &mut Ctx<'_>) {
        let _ = (pid, reason, ctx);
    }

    /// Time passed.
    pub fn timeout(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// When [`Names::timeout`] next has something to do.
    pub fn next_timeout(&self) -> Option<Time> {
        None
    }
}
