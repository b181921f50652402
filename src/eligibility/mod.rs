//! Eligibility confirmation (DESIGN §5): the residence bureau asks the hukou bureau to confirm one
//! benefit for one child; the case travels as signed versions like a child's file. Pure cores:
//! the state machine ([`state`]), the working-day calendar ([`calendar`]) with the holidays the
//! law fixes for years without a published calendar ([`statutory`]), and the case document with
//! its step rule and merge of concurrent heads ([`case`]); the [`service`] loads, decides and
//! persists with audit in one transaction; [`benefits`] ends the age-limited benefits at 18 and
//! lists the grants due for review; [`evidence`] keeps the files a case names (uploaded at the
//! requester, sealed at rest, pulled by the decider and verified, downloaded with an audit event).

pub mod benefits;
pub mod calendar;
pub mod evidence;
pub mod service;
pub mod statutory;
