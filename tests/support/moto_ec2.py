"""Test-only: libcloud's EC2 and Eucalyptus drivers adjusted to moto's dialect (XML namespace,
1-based tag calls)."""

from __future__ import annotations

from libcloud.compute.drivers.ec2 import (
    NAMESPACE,
    EC2Connection,
    EC2NodeDriver,
    EC2Response,
    EucConnection,
    EucNodeDriver,
)

# moto writes the namespace without libcloud's trailing slash, so every namespaced lookup misses.
_MOTO_NAMESPACE = 'xmlns="http://ec2.amazonaws.com/doc/2016-11-15"'
_LIBCLOUD_NAMESPACE = f'xmlns="{NAMESPACE}"'


class MotoEC2Response(EC2Response):
    def parse_body(self):
        if isinstance(self.body, str) and _MOTO_NAMESPACE in self.body:
            self.body = self.body.replace(_MOTO_NAMESPACE, _LIBCLOUD_NAMESPACE, 1)
        return super().parse_body()

    def parse_error(self):
        # Real EC2 error bodies carry no namespace, and libcloud looks for a bare Errors/Error.
        if isinstance(self.body, str):
            self.body = self.body.replace(f" {_MOTO_NAMESPACE}", "", 1)
        return super().parse_error()


class MotoEC2Connection(EC2Connection):
    responseCls = MotoEC2Response


class MotoTagCalls:
    """libcloud's tag calls numbered from 1, as moto (and the EC2 API docs) number them."""

    def ex_create_tags(self, resource, tags):
        # libcloud numbers Tag.N from 0 and ResourceId.0; moto (like the EC2 API docs) from 1.
        if not tags:
            return None
        params = {"Action": "CreateTags", "ResourceId.1": resource.id}
        for index, key in enumerate(tags, start=1):
            params[f"Tag.{index}.Key"] = key
            params[f"Tag.{index}.Value"] = tags[key]
        return self._get_boolean(self.connection.request(self.path, params=params).object)

    def ex_delete_tags(self, resource, tags):
        if not tags:
            return None
        params = {"Action": "DeleteTags", "ResourceId.1": resource.id}
        for index, key in enumerate(tags, start=1):
            params[f"Tag.{index}.Key"] = key
            if tags[key] is not None:
                params[f"Tag.{index}.Value"] = tags[key]
        return self._get_boolean(self.connection.request(self.path, params=params).object)


class MotoEC2NodeDriver(MotoTagCalls, EC2NodeDriver):
    """EC2NodeDriver that moto understands; everything else is libcloud's own code."""

    connectionCls = MotoEC2Connection


class MotoEucConnection(EucConnection):
    responseCls = MotoEC2Response


class MotoEucNodeDriver(MotoTagCalls, EucNodeDriver):
    """EucNodeDriver (its endpoint, port, path and signature version 2) that moto understands."""

    connectionCls = MotoEucConnection
