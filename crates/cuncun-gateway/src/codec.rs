//! Encoding helpers over `rumqttc::mqttbytes::v4`: every outgoing packet becomes one `Bytes`, so a
//! fanned-out PUBLISH is encoded once and shared by reference.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, PingResp, PubAck, PubComp, PubRec, Publish, SubAck, SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};

fn encode(cap: usize, f: impl FnOnce(&mut BytesMut) -> Result<usize, CodecError>) -> Result<Bytes, CodecError> {
    let mut b = BytesMut::with_capacity(cap);
    f(&mut b)?;
    Ok(b.freeze())
}

/// A QoS 0 PUBLISH. The topic is checked here because the codec would silently truncate a
/// topic longer than a u16 length.
pub fn publish_qos0(topic: &str, payload: Bytes) -> anyhow::Result<Bytes> {
    if topic.is_empty() || topic.len() > u16::MAX as usize || topic.contains(['+', '#', '\0']) {
        anyhow::bail!("invalid topic for a publish: {topic:?}");
    }
    let p = Publish::from_bytes(topic, QoS::AtMostOnce, payload);
    Ok(encode(p.size(), |b| p.write(b))?)
}

// The fixed-size control packets below cannot fail to encode; on the impossible error they come
// out empty, which the connection simply writes as nothing.
pub fn connack(code: ConnectReturnCode) -> Bytes {
    encode(4, |b| ConnAck::new(code, false).write(b)).unwrap_or_default()
}

pub fn suback(pkid: u16, codes: Vec<SubscribeReasonCode>) -> Bytes {
    let p = SubAck::new(pkid, codes);
    encode(p.size(), |b| p.write(b)).unwrap_or_default()
}

pub fn unsuback(pkid: u16) -> Bytes {
    encode(4, |b| UnsubAck::new(pkid).write(b)).unwrap_or_default()
}

pub fn puback(pkid: u16) -> Bytes {
    encode(4, |b| PubAck::new(pkid).write(b)).unwrap_or_default()
}

pub fn pubrec(pkid: u16) -> Bytes {
    encode(4, |b| PubRec::new(pkid).write(b)).unwrap_or_default()
}

pub fn pubcomp(pkid: u16) -> Bytes {
    encode(4, |b| PubComp::new(pkid).write(b)).unwrap_or_default()
}

pub fn pingresp() -> Bytes {
    encode(2, |b| PingResp.write(b)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Packet, read};

    #[test]
    fn round_trip() {
        let b = publish_qos0("eb/v1/r/50/cmd", Bytes::from_static(b"hello")).expect("encodes");
        let mut m = BytesMut::from(&b[..]);
        match read(&mut m, 1024) {
            Ok(Packet::Publish(p)) => {
                assert_eq!(p.topic, "eb/v1/r/50/cmd");
                assert_eq!(&p.payload[..], b"hello");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(publish_qos0("a/#", Bytes::new()).is_err());
        assert!(publish_qos0("", Bytes::new()).is_err());
        assert_eq!(&connack(ConnectReturnCode::BadUserNamePassword)[..], &[0x20, 2, 0, 4]);
        assert_eq!(&pingresp()[..], &[0xD0, 0]);
        assert_eq!(&suback(7, vec![SubscribeReasonCode::Failure])[..], &[0x90, 3, 0, 7, 0x80]);
    }

    /// The codec is third-party: make sure random and mutated input gives errors, not panics.
    #[test]
    fn codec_survives_garbage() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let valid: Vec<Bytes> = vec![
            publish_qos0("eb/v1/t/1/rcpt", Bytes::from_static(b"{}")).expect("encodes"),
            suback(1, vec![SubscribeReasonCode::Success(QoS::AtMostOnce)]),
            connack(ConnectReturnCode::Success),
        ];
        for i in 0..200_000 {
            let mut v: Vec<u8> = if i % 2 == 0 {
                let n = rng.gen_range(0..64);
                (0..n).map(|_| rng.r#gen::<u8>()).collect()
            } else {
                let mut v = valid[i % valid.len()].to_vec();
                let k = rng.gen_range(0..v.len());
                v[k] = rng.r#gen();
                v.truncate(rng.gen_range(0..=v.len()));
                v
            };
            // Packet types 1..14 with random flags and short remaining lengths hit every reader.
            if i % 3 == 0 && v.len() > 2 {
                v[0] = (rng.gen_range(1u8..15) << 4) | (rng.r#gen::<u8>() & 0x0f);
                v[1] = rng.gen_range(0..(v.len() as u8 - 1).min(127));
            }
            let mut m = BytesMut::from(&v[..]);
            while let Ok(_p) = read(&mut m, 1024) {}
        }
    }
}
