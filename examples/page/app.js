// Live demo page of the events gateway: subscribes to the public demo.message
// events and shows them newest first. Plain ES, no build step.
//
// Everything that comes from an event is put in the DOM with textContent,
// never innerHTML: event data is written by web-apps, not by us.
(function () {
  'use strict';

  var TOPIC = 'gateway.event.demo.message';
  var REALM = 'gateway';
  var MAX_ITEMS = 200;

  var statusEl = document.getElementById('status');
  var statusTextEl = document.getElementById('status-text');
  var eventsEl = document.getElementById('events');
  var countEl = document.getElementById('count');
  var countLabelEl = document.getElementById('count-label');
  var emptyEl = document.getElementById('empty');
  var trimNoteEl = document.getElementById('trim-note');
  var errorEl = document.getElementById('error');
  var copyBtn = document.getElementById('copy');
  var curlEl = document.getElementById('curl');

  var received = 0;
  var countdownTimer = null;

  var wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  document.getElementById('ws-url').textContent = wsUrl;

  // -- connection state -------------------------------------------------

  function setStatus(state, text) {
    statusEl.setAttribute('data-state', state);
    statusTextEl.textContent = text;
  }

  function stopCountdown() {
    if (countdownTimer !== null) {
      clearInterval(countdownTimer);
      countdownTimer = null;
    }
  }

  // Autobahn retries by itself after `delay` seconds; count down to it, then
  // show "connecting" until the next onopen/onclose.
  function startCountdown(delay) {
    stopCountdown();
    var until = Date.now() + delay * 1000;
    function tick() {
      var left = Math.ceil((until - Date.now()) / 1000);
      if (left <= 0) {
        stopCountdown();
        setStatus('connecting', 'Connecting…');
      } else {
        setStatus('lost', 'Connection lost, reconnecting in ' + left + 's');
      }
    }
    tick();
    countdownTimer = setInterval(tick, 250);
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.textContent = '';
    errorEl.hidden = true;
  }

  // -- rendering ----------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function asText(value, fallback) {
    if (value === undefined || value === null || value === '') return fallback;
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  function pad(n) {
    return (n < 10 ? '0' : '') + n;
  }

  // "14:03:27" for today, "12 Mar, 14:03:27" for other days; local time.
  function formatTime(value) {
    var date = new Date(value);
    if (isNaN(date.getTime())) return asText(value, '');
    var time = pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds());
    var now = new Date();
    if (date.toDateString() === now.toDateString()) return time;
    var day = date.toLocaleDateString(undefined, { day: 'numeric', month: 'short',
      year: date.getFullYear() === now.getFullYear() ? undefined : 'numeric' });
    return day + ', ' + time;
  }

  // A stable, pleasant hue per author for the avatar.
  function hueOf(text) {
    var h = 0;
    for (var i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) % 360;
    return h;
  }

  function renderEvent(envelope) {
    var data = (envelope && typeof envelope.data === 'object' && envelope.data) || {};
    var author = asText(data.author, 'anonymous');
    var room = asText(data.room, '—');
    var text = asText(data.text, '');
    var seq = envelope && envelope.seq !== undefined && envelope.seq !== null ? String(envelope.seq) : '';

    var item = el('li', 'event event--new');
    item.setAttribute('data-seq', seq);
    if (envelope && envelope.id !== undefined) item.setAttribute('data-id', String(envelope.id));

    var avatar = el('span', 'event__avatar', (author.trim().charAt(0) || '?').toUpperCase());
    avatar.setAttribute('aria-hidden', 'true');
    avatar.style.setProperty('--hue', hueOf(author));

    var body = el('div', 'event__body');
    var head = el('div', 'event__head');
    head.appendChild(el('span', 'event__author', author));
    var roomEl = el('span', 'event__room', room);
    roomEl.title = 'Room';
    head.appendChild(roomEl);

    var meta = el('span', 'event__meta');
    var seqEl = el('span', 'event__seq', seq !== '' ? 'seq ' + seq : '');
    if (envelope && envelope.id !== undefined) seqEl.title = 'id ' + String(envelope.id);
    meta.appendChild(seqEl);
    var timeEl = el('time', 'event__time', formatTime(envelope && envelope.time));
    if (envelope && envelope.time) {
      timeEl.setAttribute('datetime', String(envelope.time));
      timeEl.title = String(envelope.time);
    }
    meta.appendChild(timeEl);
    head.appendChild(meta);

    body.appendChild(head);
    body.appendChild(el('p', 'event__text', text));

    item.appendChild(avatar);
    item.appendChild(body);

    // Drop the highlight class once its animation is over, so that it does
    // not replay when the item is re-laid out.
    item.addEventListener('animationend', function () {
      item.classList.remove('event--new');
    });
    return item;
  }

  function addEvent(envelope) {
    received += 1;
    countEl.textContent = String(received);
    countLabelEl.textContent = received === 1 ? 'event received' : 'events received';
    emptyEl.hidden = true;

    eventsEl.insertBefore(renderEvent(envelope), eventsEl.firstChild);
    while (eventsEl.children.length > MAX_ITEMS) {
      eventsEl.removeChild(eventsEl.lastElementChild);
      trimNoteEl.hidden = false;
    }
  }

  // -- copy button -----------------------------------------------------------

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http on a non-local host: the old way.
    return new Promise(function (resolve, reject) {
      var area = document.createElement('textarea');
      area.value = text;
      area.setAttribute('readonly', '');
      area.style.position = 'fixed';
      area.style.opacity = '0';
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error('copy refused'));
    });
  }

  var copyResetTimer = null;
  copyBtn.addEventListener('click', function () {
    copyText(curlEl.textContent).then(function () {
      copyBtn.textContent = 'Copied';
      copyBtn.classList.add('button--done');
    }, function () {
      copyBtn.textContent = 'Select & copy';
      var range = document.createRange();
      range.selectNodeContents(curlEl);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
    });
    clearTimeout(copyResetTimer);
    copyResetTimer = setTimeout(function () {
      copyBtn.textContent = 'Copy';
      copyBtn.classList.remove('button--done');
    }, 2000);
  });

  // -- connection -------------------------------------------------------------

  if (typeof autobahn === 'undefined') {
    setStatus('lost', 'Client library missing');
    showError('Could not load /vendor/autobahn.min.js. Run `npm install` in the repository root ' +
      'and restart the gateway.');
    return;
  }

  var connection = new autobahn.Connection({
    url: wsUrl,
    realm: REALM,
    max_retries: -1,
    initial_retry_delay: 1,
    max_retry_delay: 30,
    retry_delay_growth: 1.5
  });

  connection.onopen = function (session) {
    stopCountdown();
    setStatus('open', 'Connection open');
    clearError();
    session.subscribe(TOPIC, function (args) {
      if (args && args.length) addEvent(args[0]);
    }).then(null, function (err) {
      showError('Could not subscribe to ' + TOPIC + ': ' + ((err && err.error) || err));
    });
  };

  connection.onclose = function (reason, details) {
    if (details && details.will_retry) {
      startCountdown(details.retry_delay || 0);
    } else {
      stopCountdown();
      setStatus('lost', 'Connection lost');
      if (reason === 'unsupported') {
        showError('This browser has no WebSocket support.');
      } else if (reason !== 'closed') {
        showError('Gave up reconnecting (' + reason + '). Reload the page to try again.');
      }
    }
  };

  setStatus('connecting', 'Connecting…');
  connection.open();
})();
