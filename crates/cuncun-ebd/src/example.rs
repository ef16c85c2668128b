//! A realistic EBM package: a county's rainstorm warning with a recording, as a vendor would
//! receive it. Used by `cuncun ebd example`, the benchmark and tests.

use crate::model::*;
use crate::package::MediaFile;
use crate::sign::sm3_hex;
use crate::values::*;
use cuncun_domain::RegionCode;
use cuncun_domain::eb::{Ebrid, ResourceKind};

/// The message text: about 600 characters of Chinese, as real warnings run.
const DESC: &str = "奉节县气象台发布暴雨红色预警信号：受强降雨云团影响，预计未来3小时内，我县朱衣镇、\
永乐镇、草堂镇、白帝镇等地将出现100毫米以上的强降雨，并伴有雷电和短时大风，局地可能引发山洪、\
滑坡、泥石流等地质灾害。请相关部门和单位做好防御暴雨应急和抢险工作；停止集会、停课、停业\
（除特殊行业外）；做好山洪、滑坡、泥石流等灾害的防御和抢险工作；危险地带人员立即转移到安全场所。";

/// A signed-ready EBM from `sender` to `dest`, with `media_bytes` of (synthetic) recording.
pub fn rainstorm_warning(sender: &Ebrid, dest: Option<&Ebrid>, seq: u64, media_bytes: usize) -> (Ebd, Vec<MediaFile>) {
    let t = |s: &str| EbdTime(chrono::NaiveDateTime::parse_from_str(s, TIME_FORMAT).unwrap_or_default());
    let areas: Vec<RegionCode> = ["500236101000", "500236102000", "500236103000", "500236104000", "500236105000", "500236106000"]
        .iter()
        .filter_map(|c| RegionCode::parse(c).ok())
        .collect();
    let media_name = format!("EBDR_{seq:04}.mp3");
    // A deterministic byte pattern standing in for an MP3 (content is not inspected here).
    let data: Vec<u8> = (0..media_bytes).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let auxiliary = (media_bytes > 0)
        .then(|| Auxiliary {
            auxiliary_type: 2,
            auxiliary_desc: media_name.clone(),
            size: data.len() as u64,
            digest: Some(sm3_hex(&data)),
        })
        .into_iter()
        .collect();
    // A valid EBRID followed by a date and a 4-digit sequence is a valid EBMID.
    let ebmid = Ebmid::parse(&format!("{}20240701{:04}", sender.as_str(), seq % 10_000)).expect("EBMID from a valid EBRID");
    let dispatch = Ebrid::generate(&RegionCode::parse("500236101").expect("valid literal"), ResourceKind::Adapter, 1)
        .map(|ebrid| Dispatch {
            language_code: None,
            ebrps: vec![],
            ebrst: vec![],
            ebras: vec![ResRef { ebrid }],
            ebrbs: vec![],
        })
        .into_iter()
        .collect();
    let ebm = Ebm {
        ebm_version: "1".into(),
        ebmid,
        related_info: None,
        msg_basic_info: MsgBasicInfo {
            msg_type: MsgType(1),
            sender_name: "奉节县应急广播平台".into(),
            sender_code: sender.clone(),
            send_time: t("2024-07-01 08:30:00"),
            event_type: EventType("11B03".into()),
            severity: Severity(1),
            start_time: t("2024-07-01 08:30:00"),
            end_time: t("2024-07-01 20:30:00"),
        },
        msg_content: MsgContent {
            language_code: LangCode("zho".into()),
            msg_title: "奉节县暴雨红色预警".into(),
            msg_desc: DESC.into(),
            area_code: AreaCodes(areas),
            program_num: None,
            auxiliary,
        },
        dispatch,
    };
    let ebd = Ebd::new(Ebdid::generate(10, sender, seq), sender.clone(), dest.cloned(), t("2024-07-01 08:30:01"), Body::Ebm(ebm));
    let media = if media_bytes > 0 { vec![MediaFile { name: media_name, data }] } else { vec![] };
    (ebd, media)
}
