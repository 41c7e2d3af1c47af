// i18n.js — every UI string of the console, in English and Chinese. Names
// that come from devices or users are never translated: they are shown as
// given.
const STRINGS = {
  en: {
    title: 'cascade console', signin: 'Sign in', token: 'API token', signout: 'Sign out',
    badToken: 'Wrong token: the API refused it.', unreachable: 'The API cannot be reached: ',
    overview: 'Overview', devices: 'GB devices', users: 'Users', events: 'Events', rooms: 'Rooms',
    upstreams: 'Upstreams', lang: '中文 zh',
    usersOnline: 'Users online', bindings: 'Bindings', gbOnline: 'GB devices online', gbDevices: 'GB devices',
    gbStreams: 'GB streams', calls: 'Calls', roomsLive: 'Rooms', participants: 'Participants',
    reqRate: 'SIP requests/s by method', respClass: 'SIP responses by class', perSec: '/s', total: 'total',
    health: 'Node health', loopLag: 'Loop lag (ms)', loopBusy: 'Loop busy (%)', overloaded: 'Overloaded',
    serverTx: 'Server transactions', connections: 'Connections (tcp/tls/ws/wss)', apiRequests: 'API requests',
    eventsPublished: 'Events published', lastHour: 'last hour, sampled every 2 s in this page', yes: 'yes', no: 'no',
    recentEvents: 'Latest events', nothing: 'nothing yet',
    search: 'Search by device id', online: 'online',
    offline: 'offline', id: 'ID', state: 'State', remote: 'Remote', transport: 'Transport', channels: 'Channels',
    lastKeepalive: 'Last keepalive', registeredAt: 'Registered', streams: 'Streams', catalog: 'Catalog',
    queryInfo: 'Device info', queryStatus: 'Device status', queryCatalog: 'Query catalog', refresh: 'Refresh',
    ptz: 'PTZ', ptzChannel: 'channel', pickChannel: 'pick a channel in the catalog', speed: 'Speed',
    stop: 'stop', zoomin: 'zoom +', zoomout: 'zoom −', sent: 'sent', back: '← all devices', name: 'Name',
    status: 'Status', manufacturer: 'Manufacturer', model: 'Model', address: 'Address', noDevice: 'no such device',
    gbOff: 'The GB upper role is off on this node.', info: 'Info',
    addUser: 'Add user', password: 'Password', add: 'Add', del: 'Delete', kick: 'Kick', realm: 'Realm',
    created: 'Created', registrations: 'Registrations', contact: 'Contact', nat: 'NAT', expiresIn: 'Expires in',
    userAgent: 'User agent', user: 'User', confirmDelete: 'Delete user {0}?', added: 'added {0}',
    type: 'Type (prefix)', who: 'User or device', pause: 'Pause', paused: 'paused', since: 'Replay since seq',
    replay: 'Replay', clear: 'Clear', seq: 'Seq', time: 'Time', details: 'Details', lost: '{0} events lost',
    room: 'Room', publishers: 'Publishers', roomsOff: 'Rooms are off on this node (no [media]).',
    upOff: 'The GB lower role is off on this node (no [upstream:ID]).', host: 'Host', lastError: 'Last error',
    lastKeepaliveOk: 'Last keepalive', misses: 'Misses', joined: 'Joined', kind: 'Kind',
    pollNote: 'live by polling /events/recent every second',
    // live view (page-live.js)
    live: 'Live view', watch: 'Watch', grid: 'Grid', gridOf: '{0} tiles', closeAll: 'Close all', load: 'Load',
    deviceId: 'Device id', tileEmpty: 'empty: pick a channel', closeTile: 'Close', st_connecting: 'connecting',
    st_playing: 'playing', st_ended: 'ended', peerGone: 'the connection ended', resume: 'Resume', seek: 'Seek',
    seekPos: 'seconds into the recording', tileInfo: '{0} · {1} frames', ptzSelect: 'select a playing tile',
    playbackTitle: 'Playback', day: 'Day', searchRecords: 'Search records', recFor: 'recordings of {0} ({1})',
    recFound: '{0} recordings of {1}: click one to play it in the selected tile',
    // events over WebSocket, device names (feat/cevents)
    evWs: 'live over WebSocket', evPoll: 'live by polling /events/recent every second (no WebSocket)',
    evConnecting: 'connecting…', evReconnect: 'WebSocket closed: reconnecting in {0} s',
    searchIdName: 'Search by device id or name',
    // FLV fallback (page-live.js)
    tileTransport: 'Transport: WebRTC (FLV when it fails) or FLV', rtcTimeout: 'WebRTC did not connect',
    rtcFailed: 'WebRTC connection failed', noMse: 'this browser has no Media Source Extensions',
    devRange: '{0}–{1} of {2} ({3} online)', devNone: 'no device matches', prevPage: 'Previous page', nextPage: 'Next page',
  },
  zh: {
    title: 'cascade 控制台', signin: '登录', token: 'API 令牌', signout: '退出',
    badToken: '令牌错误：API 拒绝了它。', unreachable: '无法连接 API：',
    overview: '概览', devices: '国标设备', users: '用户', events: '事件', rooms: '房间',
    upstreams: '上级平台', lang: 'English en',
    usersOnline: '在线用户', bindings: '注册绑定', gbOnline: '在线国标设备', gbDevices: '国标设备',
    gbStreams: '国标流', calls: '通话', roomsLive: '房间', participants: '参与者',
    reqRate: '每秒 SIP 请求（按方法）', respClass: 'SIP 响应（按类别）', perSec: '/秒', total: '总计',
    health: '节点健康', loopLag: '事件循环延迟（毫秒）', loopBusy: '事件循环繁忙（%）', overloaded: '过载',
    serverTx: '服务端事务', connections: '连接（tcp/tls/ws/wss）', apiRequests: 'API 请求',
    eventsPublished: '已发布事件', lastHour: '最近一小时，本页每 2 秒采样', yes: '是', no: '否',
    recentEvents: '最新事件', nothing: '暂无',
    search: '按设备编号搜索', online: '在线',
    offline: '离线', id: '编号', state: '状态', remote: '远端地址', transport: '传输', channels: '通道',
    lastKeepalive: '最近心跳', registeredAt: '注册时间', streams: '流', catalog: '目录',
    queryInfo: '设备信息', queryStatus: '设备状态', queryCatalog: '查询目录', refresh: '刷新',
    ptz: '云台', ptzChannel: '通道', pickChannel: '请在目录中选择通道', speed: '速度',
    stop: '停止', zoomin: '放大', zoomout: '缩小', sent: '已发送', back: '← 全部设备', name: '名称',
    status: '状态', manufacturer: '厂商', model: '型号', address: '地址', noDevice: '无此设备',
    gbOff: '本节点未启用国标上级角色。', info: '信息',
    addUser: '添加用户', password: '密码', add: '添加', del: '删除', kick: '踢出', realm: '域',
    created: '创建时间', registrations: '注册', contact: '联系地址', nat: 'NAT', expiresIn: '剩余有效期',
    userAgent: '用户代理', user: '用户', confirmDelete: '删除用户 {0}？', added: '已添加 {0}',
    type: '类型（前缀）', who: '用户或设备', pause: '暂停', paused: '已暂停', since: '从序号回放',
    replay: '回放', clear: '清空', seq: '序号', time: '时间', details: '详情', lost: '丢失 {0} 个事件',
    room: '房间', publishers: '发布者', roomsOff: '本节点未启用房间（无 [media]）。',
    upOff: '本节点未启用国标下级角色（无 [upstream:ID]）。', host: '主机', lastError: '最近错误',
    lastKeepaliveOk: '最近心跳', misses: '丢失次数', joined: '加入时间', kind: '类型',
    pollNote: '每秒轮询 /events/recent 实时更新',
    // 实时预览（page-live.js）
    live: '实时预览', watch: '预览', grid: '分屏', gridOf: '{0} 画面', closeAll: '全部关闭', load: '加载',
    deviceId: '设备编号', tileEmpty: '空：请选择通道', closeTile: '关闭', st_connecting: '连接中',
    st_playing: '播放中', st_ended: '已结束', peerGone: '连接已断开', resume: '继续', seek: '跳转',
    seekPos: '录像内的秒数', tileInfo: '{0} · {1} 帧', ptzSelect: '请选择正在播放的画面',
    playbackTitle: '录像回放', day: '日期', searchRecords: '查询录像', recFor: '{0}（{1}）的录像',
    recFound: '{1} 的 {0} 段录像：点击一段在选中的画面中回放',
    // events over WebSocket, device names (feat/cevents)
    evWs: '通过 WebSocket 实时更新', evPoll: '每秒轮询 /events/recent 实时更新（无 WebSocket）',
    evConnecting: '正在连接…', evReconnect: 'WebSocket 已断开：{0} 秒后重连',
    searchIdName: '按设备编号或名称搜索',
    // FLV 回退（page-live.js）
    tileTransport: '传输：WebRTC（失败时改用 FLV）或 FLV', rtcTimeout: 'WebRTC 未能连接',
    rtcFailed: 'WebRTC 连接失败', noMse: '此浏览器不支持 Media Source Extensions',
    devRange: '第 {0}–{1} 个，共 {2} 个（{3} 个在线）', devNone: '无匹配设备', prevPage: '上一页', nextPage: '下一页',
  },
};

let lang = localStorage.getItem('cascade.lang') === 'zh' ? 'zh' : 'en';

export function t(key, ...args) {
  const s = STRINGS[lang][key] ?? STRINGS.en[key] ?? key;
  return s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ''));
}

export function getLang() { return lang; }

export function setLang(l) {
  lang = l === 'zh' ? 'zh' : 'en';
  localStorage.setItem('cascade.lang', lang);
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}
